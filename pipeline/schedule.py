"""Nightly retraining on Kubeflow Pipelines: a recurring run of the compiled pipeline.

See docs/kubeflow.md, "Nightly retraining on KFP".
"""

import argparse
import dataclasses
import json
import os
import socket
import sys
import tempfile
import urllib.parse
from typing import Any, Dict, List, Optional

import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

CRON_FIELDS = ("second", "minute", "hour", "day of month", "month", "day of week")
DEFAULT_CRON = "0 0 2 * * *"
_CRON_CHARS = set("0123456789*,-/?LW#") | set("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
EXAMPLES = """\
example:
  python -m pipeline.schedule create --host https://KFP_HOST \\
      --pipeline-json build/seqrec_pipeline.json \\
      --cron "0 0 2 * * *" --experiment seqrec-nightly

--pipeline-json is what `python -m pipeline.kubeflow_v2_runner` wrote: a PipelineJob
.json (it holds the pipeline root) or a bare PipelineSpec .yaml (then --pipeline-root
is required); the recurring run carries the spec inline. Kubeflow Pipelines reads cron
with six fields, seconds first: "0 0 2 * * *" is 02:00:00 every day in the cluster's
time zone. One run at a time, no backfill of runs missed while paused. Caching is off
(a cached ExampleGen would not see the new day's files); --allow-caching keeps the
compiled per-step setting. More: docs/kubeflow.md."""


class ScheduleError(Exception):
  """A bad package, flag or cluster answer; the message is one line for the user."""


@dataclasses.dataclass(frozen=True)
class PipelinePackage:
  """A compiled pipeline read from disk.

  Attributes:
    path: the file it was read from.
    pipeline_spec: the PipelineSpec as a JSON dict (what the KFP API takes).
    pipeline_name: ``pipelineInfo.name`` of the spec.
    pipeline_root: ``runtimeConfig.gcsOutputDirectory`` of a PipelineJob file;
      None for a bare PipelineSpec file.
  """
  path: str
  pipeline_spec: Dict[str, Any]
  pipeline_name: str
  pipeline_root: Optional[str]


def read_pipeline_package(path: str) -> PipelinePackage:
  """Reads a compiled PipelineJob ``.json`` or PipelineSpec ``.yaml``/``.yml``.

  Both are checked against the KFP protos (``PipelineJob`` / ``PipelineSpec`` of
  ``kfp.pipeline_spec``), so a file the cluster would reject fails here.

  Raises:
    ScheduleError: missing file, unknown suffix, or content that is not one.
  """
  if not os.path.isfile(path):
    raise ScheduleError(f"pipeline package {path} does not exist")
  with open(path) as f:
    text = f.read()
  try:
    if path.endswith(".json"):
      job = pipeline_spec_pb2.PipelineJob()
      json_format.Parse(text, job)
      spec_dict = json_format.MessageToDict(job.pipeline_spec)
      root = job.runtime_config.gcs_output_directory or None
    elif path.endswith((".yaml", ".yml")):
      docs = [doc for doc in yaml.safe_load_all(text) if doc is not None]
      if len(docs) != 1 or not isinstance(docs[0], dict):
        raise ScheduleError(f"pipeline package {path}: expected one PipelineSpec YAML document, "
                            f"found {len(docs)}")
      spec_dict = docs[0]
      root = None
    else:
      raise ScheduleError(f"pipeline package {path} must end with .json (PipelineJob) "
                          "or .yaml/.yml (PipelineSpec)")
    spec = json_format.ParseDict(spec_dict, pipeline_spec_pb2.PipelineSpec())
  except (json_format.ParseError, yaml.YAMLError) as e:
    first_line = str(e).splitlines()[0] if str(e) else type(e).__name__
    raise ScheduleError(f"pipeline package {path} is not a compiled KFP pipeline: "
                        f"{first_line}") from e
  if not spec.pipeline_info.name or not spec.root.dag.tasks:
    raise ScheduleError(f"pipeline package {path} has no pipelineInfo.name or no tasks in "
                        "root.dag: not a compiled pipeline")
  return PipelinePackage(path=path, pipeline_spec=spec_dict,
                         pipeline_name=spec.pipeline_info.name, pipeline_root=root)


def validate_cron(expression: str) -> str:
  """Checks a six-field KFP cron expression (seconds first) and returns it.

  Raises:
    ScheduleError: wrong number of fields (a five-field Unix cron line gets a
      hint with the seconds field added) or characters cron does not use.
  """
  fields = expression.split()
  if len(fields) == 5:
    raise ScheduleError(f"cron {expression!r} has 5 fields; Kubeflow Pipelines wants 6 "
                        f"with seconds first, e.g. {'0 ' + ' '.join(fields)!r}")
  if len(fields) != len(CRON_FIELDS):
    raise ScheduleError(f"cron {expression!r} has {len(fields)} fields; expected 6: "
                        f"{', '.join(CRON_FIELDS)}")
  for name, field in zip(CRON_FIELDS, fields):
    bad = sorted(set(field.upper()) - _CRON_CHARS)
    if bad:
      raise ScheduleError(f"cron {expression!r}: {name} field {field!r} has unexpected "
                          f"character(s) {''.join(bad)!r}")
  return " ".join(fields)


@dataclasses.dataclass(frozen=True)
class RecurringRunRequest:
  """Everything ``kfp.Client.create_recurring_run`` needs, before any network call."""
  experiment_name: str
  job_name: str
  cron_expression: str
  pipeline_spec: Dict[str, Any]
  pipeline_root: str
  description: str
  enabled: bool = True
  max_concurrency: int = 1
  no_catchup: bool = True
  enable_caching: Optional[bool] = False  # None: keep the compiled per-step setting
  service_account: Optional[str] = None

  def create_recurring_run_kwargs(self, experiment_id: str,
                                  pipeline_package_path: str) -> Dict[str, Any]:
    """Keyword arguments of ``kfp.Client.create_recurring_run`` (kfp 2.5).

    Args:
      experiment_id: id of the experiment named ``experiment_name``.
      pipeline_package_path: a ``.yaml`` file holding ``pipeline_spec`` (see
        ``write_pipeline_spec``); kfp 2.5 reads only YAML packages.
    """
    return dict(
        experiment_id=experiment_id,
        job_name=self.job_name,
        description=self.description,
        cron_expression=self.cron_expression,
        max_concurrency=self.max_concurrency,
        no_catchup=self.no_catchup,
        pipeline_package_path=pipeline_package_path,
        enabled=self.enabled,
        pipeline_root=self.pipeline_root,
        enable_caching=self.enable_caching,
        service_account=self.service_account)


def build_request(package: PipelinePackage, cron_expression: str, experiment: str,
                  job_name: Optional[str] = None, pipeline_root: Optional[str] = None,
                  enabled: bool = True, allow_caching: bool = False,
                  service_account: Optional[str] = None) -> RecurringRunRequest:
  """Builds the recurring-run request for ``package``; no I/O.

  Args:
    package: the compiled pipeline.
    cron_expression: six-field cron, seconds first.
    experiment: KFP experiment name (created if missing).
    job_name: recurring run name; default ``<pipeline name>-nightly``.
    pipeline_root: overrides the package's pipeline root; required for a bare
      PipelineSpec package. TFX steps write with tf.io.gfile, so it must be a
      ``gs://`` / ``s3://`` URI the pods can write, not KFP's default minio root.
    enabled: create the schedule enabled.
    allow_caching: keep the compiled caching setting instead of turning it off.
    service_account: Kubernetes service account of the runs (None: KFP default).

  Raises:
    ScheduleError: bad cron, missing experiment name or pipeline root.
  """
  cron = validate_cron(cron_expression)
  if not experiment or not experiment.strip():
    raise ScheduleError("experiment name must not be empty")
  root = pipeline_root or package.pipeline_root
  if not root:
    raise ScheduleError(f"pipeline package {package.path} holds no pipeline root "
                        "(a .yaml PipelineSpec): pass --pipeline-root gs://...")
  return RecurringRunRequest(
      experiment_name=experiment.strip(),
      job_name=job_name or f"{package.pipeline_name}-nightly",
      cron_expression=cron,
      pipeline_spec=package.pipeline_spec,
      pipeline_root=root,
      description=(f"Retrains {package.pipeline_name} on cron '{cron}' "
                   f"from {os.path.basename(package.path)}"),
      enabled=enabled,
      enable_caching=None if allow_caching else False,
      service_account=service_account)


def write_pipeline_spec(pipeline_spec: Dict[str, Any], path: str) -> str:
  """Writes a PipelineSpec dict as the YAML package kfp 2.5's client reads."""
  with open(path, "w") as f:
    yaml.safe_dump(pipeline_spec, f, sort_keys=True)
  return path


def check_reachable(host: str, timeout: float = 10.0) -> None:
  """Opens (and closes) a TCP connection to the KFP API host.

  kfp's own client retries an unreachable host for half a minute and logs
  tracebacks; this fails at once with one line instead.

  Raises:
    ScheduleError: malformed URL, or no TCP connection within ``timeout``.
  """
  parsed = urllib.parse.urlparse(host if "://" in host else f"https://{host}")
  if parsed.scheme not in ("http", "https") or not parsed.hostname:
    raise ScheduleError(f"host {host!r} is not an http(s) URL such as https://kfp.example.com")
  try:
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
  except ValueError as e:
    raise ScheduleError(f"host {host!r} has a bad port: {e}") from e
  try:
    with socket.create_connection((parsed.hostname, port), timeout=timeout):
      pass
  except OSError as e:
    reason = e.strerror or str(e) or type(e).__name__
    raise ScheduleError(f"cannot reach Kubeflow Pipelines at {host} "
                        f"({parsed.hostname}:{port}): {reason}") from e


def _api_error_line(error: Exception) -> str:
  """One line for an error the KFP client raised."""
  status = getattr(error, "status", None)
  if status is not None:  # kfp_server_api.ApiException
    body = " ".join(str(getattr(error, "body", "") or "").split())[:300]
    return f"Kubeflow Pipelines answered HTTP {status} {getattr(error, 'reason', '')}: {body}"
  text = " ".join(str(error).split())[:300]
  return f"{type(error).__name__}: {text}" if text else type(error).__name__


def create_recurring_run(request: RecurringRunRequest, host: str,
                         namespace: Optional[str] = None, timeout: float = 10.0) -> str:
  """Creates the experiment (if missing) and the recurring run; returns its id.

  Raises:
    ScheduleError: the host is unreachable or the API refused the request.
  """
  check_reachable(host, timeout)
  import kfp  # pylint: disable=g-import-not-at-top
  try:
    client = kfp.Client(host=host, namespace=namespace or "kubeflow")
    experiment = client.create_experiment(request.experiment_name, namespace=namespace)
    with tempfile.TemporaryDirectory() as tmp:
      package = write_pipeline_spec(request.pipeline_spec, os.path.join(tmp, "pipeline.yaml"))
      run = client.create_recurring_run(
          **request.create_recurring_run_kwargs(experiment.experiment_id, package))
  except Exception as e:  # pylint: disable=broad-except
    # The client raises ApiException, urllib3 and ValueError/TimeoutError alike.
    raise ScheduleError(_api_error_line(e)) from e
  return run.recurring_run_id


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(prog="python -m pipeline.schedule", description=__doc__,
                                   epilog=EXAMPLES,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  commands = parser.add_subparsers(dest="command", required=True)
  create = commands.add_parser("create", help="create a recurring run of a compiled pipeline")
  create.add_argument("--host", required=True, help="KFP API endpoint, e.g. https://KFP_HOST")
  create.add_argument("--pipeline-json", required=True,
                      help="compiled pipeline: PipelineJob .json or PipelineSpec .yaml")
  create.add_argument("--cron", default=DEFAULT_CRON,
                      help=f"six-field cron, seconds first (default {DEFAULT_CRON!r}: 02:00 daily)")
  create.add_argument("--experiment", required=True, help="experiment name (created if missing)")
  create.add_argument("--job-name", default=None,
                      help="recurring run name (default <pipeline name>-nightly)")
  create.add_argument("--pipeline-root", default=None,
                      help="gs:// or s3:// root of run outputs (default: the one in the .json)")
  create.add_argument("--namespace", default=None, help="namespace of a multi-user deployment")
  create.add_argument("--service-account", default=None)
  create.add_argument("--disabled", action="store_true", help="create the schedule paused")
  create.add_argument("--allow-caching", action="store_true",
                      help="keep the compiled caching setting (default: caching off)")
  create.add_argument("--timeout", type=float, default=10.0,
                      help="seconds to wait for a connection to --host")
  create.add_argument("--dry-run", action="store_true",
                      help="print the request and stop before any network call")
  return parser.parse_args(argv)


def _describe(request: RecurringRunRequest) -> str:
  summary = {k: v for k, v in dataclasses.asdict(request).items() if k != "pipeline_spec"}
  summary["pipeline_name"] = request.pipeline_spec.get("pipelineInfo", {}).get("name")
  summary["tasks"] = sorted(request.pipeline_spec.get("root", {}).get("dag", {})
                            .get("tasks", {}))
  return json.dumps(summary, indent=2, sort_keys=True)


def main(argv: Optional[List[str]] = None) -> int:
  args = parse_args(argv)
  try:
    package = read_pipeline_package(args.pipeline_json)
    request = build_request(
        package, args.cron, args.experiment, job_name=args.job_name,
        pipeline_root=args.pipeline_root, enabled=not args.disabled,
        allow_caching=args.allow_caching, service_account=args.service_account)
    if args.dry_run:
      print(_describe(request))
      return 0
    run_id = create_recurring_run(request, args.host, args.namespace, args.timeout)
  except ScheduleError as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  print(f"Created recurring run {request.job_name} ({run_id}) in experiment "
        f"{request.experiment_name}: cron '{request.cron_expression}', "
        f"pipeline root {request.pipeline_root}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
