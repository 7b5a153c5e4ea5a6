"""The whole analysis in one call: resumable stages, the demo."""

from brainldm.pipeline._demo import DEMO_DATA, run_demo, write_demo_nsd
from brainldm.pipeline._run import STAGES, RunContext, run_pipeline

__all__ = ["run_pipeline", "run_demo", "write_demo_nsd", "STAGES", "RunContext", "DEMO_DATA"]
