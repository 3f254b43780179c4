"""Mode-2 planning: action sequences optimised through a world model, batched over environments.

================ ==================================================================================
``base``         the :class:`Planner` interface (``configure`` then ``solve``), :class:`Plan`, the
                 per-environment random streams
``sampling``     :class:`CEM` and :class:`ICEM` (coloured noise, elite reuse)
``mppi``         :class:`MPPI` (temperature-weighted refit)
``gradient``     :class:`Gradient` (Adam / L-BFGS through the unrolled predictor, projected onto the
                 bounds, restarts) and :class:`Refine` (a sampler's elites refined by gradient)
``methods``      the methods by name: :func:`make_planner`
``world``        what planning needs of a world model: :class:`SpecWorld` (a compiled spec's
                 programs) and :class:`DynamicsModel` (plain functions, e.g. true dynamics)
``objective``    :class:`PlanCost`: encode once, one rollout of every candidate, the spec's costs
``flat``         :func:`plan` (``jg.plan``): flat Mode-2 planning, all environments at once
``mpc``          :func:`control` (``jg.control``): receding-horizon MPC, recorded as a :class:`Run`
``evaluation``   :func:`evaluate`: episodes on held-out seeds, the success table; a trajectory PNG
================ ==================================================================================

Planning sits above inference and the environments and below training: it imports the
compiler's programs, the searches, the environments and inference's latent spaces, never training.
"""
from .base import ACTION, LATENT, Plan, Planner, Streams, env_seeds
from .evaluation import evaluate, plot_trajectories
from .flat import plan
from .gradient import Gradient, Refine
from .methods import METHODS, PLANNERS, make_planner
from .mpc import Run, control
from .mppi import MPPI
from .objective import NonFiniteCostError, PlanCost
from .sampling import CEM, ICEM, Sampler
from .world import DynamicsModel, SpecWorld

__all__ = ["ACTION", "CEM", "DynamicsModel", "Gradient", "ICEM", "LATENT", "METHODS", "MPPI", "NonFiniteCostError",
           "PLANNERS", "Plan", "PlanCost", "Planner", "Refine", "Run", "Sampler", "SpecWorld", "Streams", "control",
           "env_seeds", "evaluate", "make_planner", "plan", "plot_trajectories"]
