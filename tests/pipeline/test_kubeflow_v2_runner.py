"""The pipeline compiles for Kubeflow Pipelines v2, and the nightly schedule request is right.

No cluster here: compiled files are checked with the kfp SDK's own protos and
loaders, and the schedule's client calls go to a fake KFP API on localhost.
"""

import copy
import dataclasses
import http.server
import inspect
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml
from google.protobuf import json_format
from kfp import components as kfp_components
from kfp.client import client as kfp_client_module
from kfp.pipeline_spec import pipeline_spec_pb2

from pipeline import configs
from pipeline import kubeflow_v2_runner
from pipeline import schedule
from pipeline.ingest import canonical

REPO = Path(__file__).resolve().parents[2]
IMAGE = "gcr.io/example-project/seqrec:test"
RUN_EXECUTOR = ["python", "-m", "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"]



def _compiled_task_names(pipeline):
  """Task names KubeflowV2DagRunner gives the pipeline's nodes.

  It compiles the latest-blessed-model resolver into two tasks (one query for the
  blessings, one for the models); every other node keeps its id.
  """
  names = set()
  for component in pipeline.components:
    if component.id == "latest_blessed_model_resolver":
      names |= {f"{component.id}-model-resolver", f"{component.id}-model-blessing-resolver"}
    else:
      names.add(component.id)
  return names

def _canonical_data(root: Path, with_items: bool) -> Path:
  """A tiny canonical data folder, enough for the definition-time checks."""
  log = root / canonical.INTERACTIONS_DIR
  log.mkdir(parents=True)
  (log / canonical.INTERACTIONS_FILE).write_text(
      "user_id,item_id,timestamp\nu1,i1,1\nu1,i2,2\nu1,i3,3\n")
  if with_items:
    items = root / canonical.ITEMS_DIR
    items.mkdir()
    (items / canonical.ITEMS_FILE).write_text(
        "item_id,title,attributes\ni1,One,a\ni2,Two,a|b\ni3,Three,\n")
  return root


def _parameter(task: dict, name: str):
  """The constant value of a task's input parameter (spec 2.1 ``constant``)."""
  return task["inputs"]["parameters"][name]["runtimeValue"]["constant"]


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
  """Compiles the pipeline once for a local tmp data root with an item table.

  Returns (config, pipeline object, path of the PipelineJob JSON).
  """
  from pipeline.pipeline import create_pipeline  # pylint: disable=g-import-not-at-top
  tmp = tmp_path_factory.mktemp("kfp")
  data = _canonical_data(tmp / "data", with_items=True)
  config = configs.PipelineConfig(
      data_root=str(data), output_root="gs://seqrec-test-bucket/out",
      serving_root="gs://seqrec-serving/models")
  path = kubeflow_v2_runner.compile_pipeline(config, IMAGE, str(tmp / "build" / "pipeline.json"))
  return config, create_pipeline(config), path


@pytest.fixture(scope="module")
def job(compiled):
  """The compiled file parsed as kfp's PipelineJob proto, and its spec as a dict."""
  _, _, path = compiled
  message = json_format.Parse(Path(path).read_text(), pipeline_spec_pb2.PipelineJob())
  return message, json_format.MessageToDict(message.pipeline_spec)


def test_compiled_job_holds_every_component_of_the_pipeline(compiled, job):
  _, pipeline, _ = compiled
  _, spec = job
  expected = _compiled_task_names(pipeline)
  assert set(spec["root"]["dag"]["tasks"]) == expected
  assert set(spec["components"]) == expected
  assert {"LogExampleGen", "ItemExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator",
          "SequenceBuilder", "Transform", "PretrainTrainer", "Trainer",
          "RankingEvaluator"} <= expected
  assert any("Pusher" in name for name in expected)
  assert spec["pipelineInfo"]["name"] == "seqrec"
  assert spec["schemaVersion"] == "2.1.0"


def test_every_executor_runs_the_project_image_with_tfx_entrypoint(job):
  _, spec = job
  executors = spec["deploymentSpec"]["executors"]
  assert len(executors) == len(spec["components"])
  containers = {name: e for name, e in executors.items() if "container" in e}
  # The resolvers are metadata queries KFP runs itself; everything else is a container.
  assert all("resolver" in e for name, e in executors.items() if name not in containers)
  assert len(containers) >= len(executors) - 2
  for name, executor in containers.items():
    assert executor["container"]["image"] == IMAGE, name
    assert executor["container"]["command"] == RUN_EXECUTOR, name
  # Custom components name project modules: the image must have the project installed.
  args = executors["SequenceBuilder_executor"]["container"]["args"]
  assert args[args.index("--executor_class_path") + 1].startswith("components.")
  # Both ExampleGens declare feature types (ids stay strings) instead of inferring them.
  for gen in ("LogExampleGen", "ItemExampleGen"):
    args = executors[f"{gen}_executor"]["container"]["args"]
    assert args[args.index("--executor_class_path") + 1] == (
        "pipeline.ingest.example_gen.Executor"), gen


def test_compiled_job_carries_pipeline_data_and_serving_roots(compiled, job):
  config, _, _ = compiled
  message, spec = job
  assert message.runtime_config.gcs_output_directory == config.pipeline_root
  assert config.pipeline_root == "gs://seqrec-test-bucket/out/tfx/seqrec"
  tasks = spec["root"]["dag"]["tasks"]
  assert _parameter(tasks["LogExampleGen"], "input_base") == config.interactions_root
  assert _parameter(tasks["ItemExampleGen"], "input_base") == config.items_root
  push = json.loads(_parameter(tasks["AtomicPusher"], "push_destination"))
  assert push["filesystem"]["base_directory"] == "gs://seqrec-serving/models/seqrec"
  assert _parameter(tasks["Trainer"], "run_fn") == "trainer.run_fn.run_fn"
  assert _parameter(tasks["PretrainTrainer"], "run_fn") == "trainer.pretrain_run_fn.run_fn"
  # Fine-tuning starts from the pre-training's model.
  base = tasks["Trainer"]["inputs"]["artifacts"]["base_model"]["taskOutputArtifact"]
  assert base["producerTask"] == "PretrainTrainer"


def test_yaml_output_is_a_spec_the_kfp_sdk_loads(tmp_path):
  data = _canonical_data(tmp_path / "data", with_items=False)
  out = tmp_path / "pipeline.yaml"
  assert kubeflow_v2_runner.main([
      "--image", IMAGE, "--output-root", "gs://b/out", "--data-root", str(data),
      "--output", str(out)]) == 0
  component = kfp_components.load_component_from_file(str(out))
  tasks = set(component.pipeline_spec.root.dag.tasks)
  assert "LogExampleGen" in tasks and "SequenceBuilder" in tasks
  assert "ItemExampleGen" not in tasks  # no items/ folder under the data root
  # What kfp.Client.upload_pipeline / create_recurring_run read from a package.
  doc = kfp_client_module._extract_pipeline_yaml(str(out))  # pylint: disable=protected-access
  assert set(doc.pipeline_spec.root.dag.tasks) == tasks


def test_remote_data_root_compiles_offline_when_item_table_is_stated(tmp_path):
  out = tmp_path / "job.json"
  assert kubeflow_v2_runner.main([
      "--image", IMAGE, "--output-root", "gs://b/out", "--data-root", "gs://b/data",
      "--item-table", "--output", str(out),
      "--beam-arg=--runner=DataflowRunner", "--beam-arg=--project=p"]) == 0
  message = json_format.Parse(out.read_text(), pipeline_spec_pb2.PipelineJob())
  spec = json_format.MessageToDict(message.pipeline_spec)
  tasks = spec["root"]["dag"]["tasks"]
  assert _parameter(tasks["ItemExampleGen"], "input_base") == "gs://b/data/items"
  for executor in spec["deploymentSpec"]["executors"].values():
    if "container" not in executor:
      continue  # the latest-blessed-model resolver's metadata queries
    args = executor["container"]["args"]
    assert "--runner=DataflowRunner" in args and "--project=p" in args
    assert "--direct_running_mode=in_memory" not in args


def test_remote_data_root_without_item_table_flag_is_a_one_line_error(tmp_path, capsys):
  assert kubeflow_v2_runner.main([
      "--image", IMAGE, "--output-root", "gs://b/out", "--data-root", "gs://b/data",
      "--output", str(tmp_path / "job.json")]) == 1
  err = capsys.readouterr().err.strip()
  assert err.startswith("error: --data-root gs://b/data is remote")
  assert "--item-table" in err and "\n" not in err
  assert not (tmp_path / "job.json").exists()


def test_compile_rejects_unknown_output_suffix_and_blank_image(compiled, tmp_path):
  config, _, _ = compiled
  with pytest.raises(ValueError, match=r"pipeline\.txt must end with"):
    kubeflow_v2_runner.compile_pipeline(config, IMAGE, str(tmp_path / "pipeline.txt"))
  with pytest.raises(ValueError, match="image"):
    kubeflow_v2_runner.compile_pipeline(config, " ", str(tmp_path / "pipeline.json"))


def test_local_paths_are_warned_about(compiled):
  config, _, _ = compiled
  warnings = kubeflow_v2_runner.local_path_warnings(config)
  assert len(warnings) == 1 and "data root" in warnings[0] and config.data_root in warnings[0]


# --- schedule -----------------------------------------------------------------


def test_schedule_request_for_compiled_job(compiled):
  config, pipeline, path = compiled
  request = schedule.build_request(schedule.read_pipeline_package(path),
                                   "0 0 2 * * *", "seqrec-nightly")
  assert request.experiment_name == "seqrec-nightly"
  assert request.job_name == "seqrec-nightly"
  assert request.cron_expression == "0 0 2 * * *"
  assert request.pipeline_root == config.pipeline_root
  assert set(request.pipeline_spec["root"]["dag"]["tasks"]) == _compiled_task_names(pipeline)
  kwargs = request.create_recurring_run_kwargs("exp-1", "/tmp/pipeline.yaml")
  assert kwargs["experiment_id"] == "exp-1"
  assert kwargs["max_concurrency"] == 1 and kwargs["no_catchup"] is True
  assert kwargs["enabled"] is True and kwargs["enable_caching"] is False
  # Every keyword exists in the installed kfp client's create_recurring_run.
  accepted = set(inspect.signature(__import__("kfp").Client.create_recurring_run).parameters)
  assert set(kwargs) <= accepted


def test_schedule_options_change_the_request(compiled):
  _, _, path = compiled
  request = schedule.build_request(
      schedule.read_pipeline_package(path), "0 30 1 * * MON-FRI", "exp", job_name="weekday",
      pipeline_root="gs://other/root", enabled=False, allow_caching=True)
  assert request.job_name == "weekday" and request.pipeline_root == "gs://other/root"
  assert request.enabled is False and request.enable_caching is None


def test_written_spec_is_a_package_the_kfp_client_reads(compiled, tmp_path):
  _, pipeline, path = compiled
  spec = schedule.read_pipeline_package(path).pipeline_spec
  package = schedule.write_pipeline_spec(spec, str(tmp_path / "pipeline.yaml"))
  doc = kfp_client_module._extract_pipeline_yaml(package)  # pylint: disable=protected-access
  assert set(doc.pipeline_spec.root.dag.tasks) == _compiled_task_names(pipeline)
  assert kfp_components.load_component_from_file(package).name == "seqrec"


@pytest.mark.parametrize("cron, message", [
    ("0 2 * * *",
     "has 5 fields; Kubeflow Pipelines wants 6 with seconds first, e.g. '0 0 2 * * *'"),
    ("0 0 2 * * * 2030", "has 7 fields"),
    ("0 0 2; * * *", "hour field '2;' has unexpected character"),
])
def test_bad_cron_is_refused_with_the_reason(cron, message):
  with pytest.raises(schedule.ScheduleError, match=message.replace("*", r"\*")):
    schedule.validate_cron(cron)


def test_spec_yaml_needs_a_pipeline_root(tmp_path, compiled):
  _, _, path = compiled
  spec_path = schedule.write_pipeline_spec(schedule.read_pipeline_package(path).pipeline_spec,
                                           str(tmp_path / "spec.yaml"))
  package = schedule.read_pipeline_package(spec_path)
  assert package.pipeline_root is None
  with pytest.raises(schedule.ScheduleError, match="--pipeline-root"):
    schedule.build_request(package, schedule.DEFAULT_CRON, "exp")
  assert schedule.build_request(package, schedule.DEFAULT_CRON, "exp",
                                pipeline_root="gs://r").pipeline_root == "gs://r"


def test_non_pipeline_files_are_refused_naming_the_file(tmp_path):
  bad_json = tmp_path / "other.json"
  bad_json.write_text(json.dumps({"displayName": "x", "notAField": 1}))
  with pytest.raises(schedule.ScheduleError, match=r"other\.json is not a compiled KFP pipeline"):
    schedule.read_pipeline_package(str(bad_json))
  empty = tmp_path / "empty.yaml"
  empty.write_text(yaml.safe_dump({"pipelineInfo": {"name": "x"}}))
  with pytest.raises(schedule.ScheduleError, match=r"empty\.yaml has no .* tasks"):
    schedule.read_pipeline_package(str(empty))
  with pytest.raises(schedule.ScheduleError, match="does not exist"):
    schedule.read_pipeline_package(str(tmp_path / "missing.json"))


def test_unreachable_host_fails_fast_with_one_line_and_no_traceback(compiled):
  _, _, path = compiled
  result = subprocess.run(
      [sys.executable, "-m", "pipeline.schedule", "create", "--host", "http://127.0.0.1:9",
       "--pipeline-json", path, "--cron", "0 0 2 * * *", "--experiment", "nightly"],
      cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
  assert result.returncode == 1
  assert "Traceback" not in result.stderr
  errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
  assert errors == [
      "error: cannot reach Kubeflow Pipelines at http://127.0.0.1:9 (127.0.0.1:9): "
      "Connection refused"]


class _FakeKfpApi(http.server.BaseHTTPRequestHandler):
  """Answers the four KFP v2beta1 calls the schedule makes; records POST bodies."""
  posts = {}

  def _reply(self, body):
    data = json.dumps(body).encode()
    self.send_response(200)
    self.send_header("Content-Type", "application/json")
    self.send_header("Content-Length", str(len(data)))
    self.end_headers()
    self.wfile.write(data)

  def do_GET(self):  # pylint: disable=invalid-name
    if self.path.startswith("/apis/v2beta1/healthz"):
      self._reply({"multi_user": False})
    elif self.path.startswith("/apis/v2beta1/experiments"):
      self._reply({})  # no experiment of that name yet
    else:
      self.send_error(404)

  def do_POST(self):  # pylint: disable=invalid-name
    body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
    type(self).posts[self.path] = body
    if self.path == "/apis/v2beta1/experiments":
      self._reply(dict(body, experiment_id="exp-42"))
    elif self.path == "/apis/v2beta1/recurringruns":
      self._reply(dict(body, recurring_run_id="rr-7"))
    else:
      self.send_error(404)

  def log_message(self, *args):  # keep test output quiet
    pass


def test_create_recurring_run_sends_the_request_through_the_kfp_client(compiled):
  config, pipeline, path = compiled
  server = http.server.HTTPServer(("127.0.0.1", 0), _FakeKfpApi)
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  try:
    request = schedule.build_request(schedule.read_pipeline_package(path),
                                     "0 0 2 * * *", "seqrec-nightly")
    # A spec compiled with caching on: the nightly schedule must turn it off.
    spec = copy.deepcopy(request.pipeline_spec)
    for task in spec["root"]["dag"]["tasks"].values():
      task["cachingOptions"] = {"enableCache": True}
    request = dataclasses.replace(request, pipeline_spec=spec)
    run_id = schedule.create_recurring_run(request, f"http://127.0.0.1:{server.server_port}")
  finally:
    server.shutdown()
    server.server_close()
  assert run_id == "rr-7"
  assert _FakeKfpApi.posts["/apis/v2beta1/experiments"]["display_name"] == "seqrec-nightly"
  body = _FakeKfpApi.posts["/apis/v2beta1/recurringruns"]
  assert body["experiment_id"] == "exp-42"
  assert body["display_name"] == "seqrec-nightly"
  assert body["trigger"]["cron_schedule"]["cron"] == "0 0 2 * * *"
  assert int(body["max_concurrency"]) == 1 and body["no_catchup"] is True
  assert body["mode"] == "ENABLE"
  assert body["runtime_config"]["pipeline_root"] == config.pipeline_root
  assert set(body["pipeline_spec"]["root"]["dag"]["tasks"]) == _compiled_task_names(pipeline)
  assert not any(task.get("cachingOptions", {}).get("enableCache", False)
                 for task in body["pipeline_spec"]["root"]["dag"]["tasks"].values())


# --- nightly retraining without Kubeflow: CronJob and crontab ------------------


def test_cronjob_manifest_is_a_valid_nightly_non_overlapping_job():
  from kubernetes import client  # pylint: disable=g-import-not-at-top
  from pipeline import local_runner  # pylint: disable=g-import-not-at-top
  manifest = yaml.safe_load((REPO / "deploy" / "cronjob.yaml").read_text())

  class _Response:  # what ApiClient.deserialize reads
    data = json.dumps(manifest)

  api = client.ApiClient()
  cronjob = api.deserialize(_Response(), "V1CronJob")
  # A misspelt field would be dropped by the typed model and break the round trip.
  assert api.sanitize_for_serialization(cronjob) == manifest
  assert cronjob.kind == "CronJob"
  assert cronjob.spec.schedule == "0 2 * * *"
  assert cronjob.spec.concurrency_policy == "Forbid"
  container = cronjob.spec.job_template.spec.template.spec.containers[0]
  assert container.command == ["python", "-m", "pipeline.local_runner"]
  args = local_runner.parse_args(container.args)
  assert args.dataset == "csv" and args.output_dir == "/outputs" and args.enable_cache
  mounts = {m.mount_path for m in container.volume_mounts}
  assert {"/outputs", os.path.dirname(args.data_dir)} <= mounts


def test_crontab_example_runs_the_runner_nightly_under_flock():
  import shlex  # pylint: disable=g-import-not-at-top
  from pipeline import local_runner  # pylint: disable=g-import-not-at-top
  lines = [line for line in (REPO / "deploy" / "crontab.example").read_text().splitlines()
           if line.strip() and not line.startswith("#")]
  assert len(lines) == 1
  words = shlex.split(lines[0])
  assert words[:5] == ["0", "2", "*", "*", "*"]
  assert "flock" in words and words[words.index("flock") + 1] == "-n"
  assert words[words.index("make") + 1] == "retrain"
  for variable in ("LOG=", "SPAN=$(date -d yesterday", "WINDOW=", "OUT="):
    assert f" {variable}" in lines[0]