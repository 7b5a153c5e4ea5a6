"""Human evaluation: raters identify the original of each reconstruction in a browser.

The paper's subjective evaluation (Takagi & Nishimoto 2023, Figure 5 right):
for each reconstruction, which of two candidate originals (the true image and
another test image) does it show? ``serve`` runs the rating page on localhost
(answers go to SQLite as they come); ``summarize_ratings`` computes accuracy per
condition and the signed-rank tests between conditions. The web part needs the
``rate`` extra (Flask); everything else needs only numpy, scipy and pandas.

The run folder must hold the originals, ``originals/{nsd_id:06d}.png``
(:func:`brainldm.reconstruction.write_originals`), beside the reconstructions and
``index.csv``; :mod:`brainldm.reconstruction` owns that folder's format. The
command line::

    brainldm rate serve --run RUN --raters r1,r2,r3   # prints one link per rater
    brainldm rate results --run RUN                   # -> RUN/rating/rating_*.csv, .json
"""

from brainldm.rating._app import RatingServer, create_app, make_server, serve
from brainldm.rating._results import (
    CHANCE,
    RatingResults,
    load_judgements,
    rating_results,
    summarize_ratings,
    write_rating_results,
)
from brainldm.rating._run import RatingRun, default_db_path, load_run
from brainldm.rating._store import (
    JUDGEMENT_COLUMNS,
    RaterExistsError,
    RatingError,
    RatingStore,
    Trial,
    TrialAnsweredError,
    UnknownRaterError,
    UnknownTrialError,
)
from brainldm.rating._trials import SIDES, plan_trials, rated_reconstructions

__all__ = [
    # run folder
    "load_run",
    "RatingRun",
    "default_db_path",
    # trials and store
    "plan_trials",
    "rated_reconstructions",
    "SIDES",
    "RatingStore",
    "Trial",
    "JUDGEMENT_COLUMNS",
    "RatingError",
    "RaterExistsError",
    "UnknownRaterError",
    "UnknownTrialError",
    "TrialAnsweredError",
    # web app
    "create_app",
    "make_server",
    "serve",
    "RatingServer",
    # results
    "rating_results",
    "summarize_ratings",
    "load_judgements",
    "write_rating_results",
    "RatingResults",
    "CHANCE",
]
