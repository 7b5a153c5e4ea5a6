"""The whole analysis in one call: resumable stages, the run folder, the report, the demo.

Each stage (:data:`STAGES`) is a short call into the library; :class:`RunLayout`
says where each artefact of a run lies; :func:`plan_run` says, before any work,
which stages a run will skip, resume or redo.
"""

from brainldm.pipeline._context import RunContext
from brainldm.pipeline._demo import DEMO_DATA, run_demo, write_demo_nsd
from brainldm.pipeline._figures import draw_figures, redraw_figures
from brainldm.pipeline._seeds import run_seed_checks
from brainldm.pipeline._layout import RunLayout
from brainldm.pipeline._report import Report, refresh_report, write_report
from brainldm.pipeline._resume import StaleStageError, StepPlan, plan_run, removals
from brainldm.pipeline._run import STAGES, check_inputs, run_pipeline
from brainldm.pipeline._stages import Stage

__all__ = [
    "run_pipeline",
    "plan_run",
    "removals",
    "check_inputs",
    "StepPlan",
    "StaleStageError",
    "RunLayout",
    "RunContext",
    "Stage",
    "STAGES",
    "Report",
    "write_report",
    "refresh_report",
    "draw_figures",
    "redraw_figures",
    "run_seed_checks",
    "run_demo",
    "write_demo_nsd",
    "DEMO_DATA",
]
