"""Self-supervised pre-training of the sequence encoder.

Modules, one concept each:

* ``objectives``      the registry: objective name -> weight field, loss layer.
* ``config``          PretrainConfig: objective weights and settings.
* ``augmentations``   Cloze masking, crop, mask, reorder (stateless, seeded).
* ``batch``           PretrainingBatch: encoder passes shared by the objectives; their base class.
* ``masked_item``     Cloze / BERT4Rec objective (bidirectional).
* ``next_item``       SASRec next-item objective (causal).
* ``attributes``      S3-Rec AAP + MAP objective.
* ``contrastive``     CL4SRec InfoNCE between two views.
* ``kmeans``          numpy k-means.
* ``clustering``      ICLRec intent prototypes: objective and re-clustering callback.
* ``model``           PretrainingModel: weighted sum of the enabled objectives.
* ``item_attributes`` ItemAttributeTable and the transformed items split reader.
"""
