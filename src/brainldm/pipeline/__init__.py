"""The whole analysis in one call: resumable stages, the demo, the report."""

from brainldm.pipeline._demo import DEMO_DATA, run_demo, write_demo_nsd
from brainldm.pipeline._report import refresh_report, write_report
from brainldm.pipeline._run import STAGES, RunContext, check_inputs, run_pipeline

__all__ = [
    "run_pipeline",
    "check_inputs",
    "run_demo",
    "write_demo_nsd",
    "write_report",
    "refresh_report",
    "STAGES",
    "RunContext",
    "DEMO_DATA",
]
