"""jepa-graph: declarative, graph-based composition of Joint Embedding Predictive Architectures.

Pipeline: parse (``parse_yaml``/``parse_dsl``) -> validate -> graph -> checks -> shapes ->
lower -> run (train / minimise / plan) -> render.

    import jepa_graph as jg
    spec = jg.load("specs/two_rooms.yaml")
    model = jg.compile(spec)
    out = model(**model.example_inputs(8))
"""
import importlib

from .core.errors import BlockRuntimeError, Diagnostic, Location, SpecError
from .compiler.pipeline import check
from .core.registry import BlockType, DimInt, Params, get_block, list_blocks, register_block
from .frontend.spec import Spec
from .core.tensors import SCALAR, ShapeMismatch, TType, vec
from .frontend.load import from_dict, load, loads

__version__ = "0.1.0"

# Names imported on first use: loading and checking a spec import no torch (nor plotting, training).
_LAZY = {
    "compile": "jepa_graph.compiler.model",
    "CompiledModel": "jepa_graph.compiler.model",
    "ema_momentum": "jepa_graph.compiler.model",
    "render": "jepa_graph.diagrams",
    "minimize_energy": "jepa_graph.inference.minimize",
    "predict_modes": "jepa_graph.inference.minimize",
    "infer_latents": "jepa_graph.inference.minimize",
    "free_energy": "jepa_graph.inference.minimize",
    "NonFiniteEnergyError": "jepa_graph.inference.latents",
    "latent_landscape": "jepa_graph.inference.landscape",
    "energy_along": "jepa_graph.inference.landscape",
    "plot_latent_landscape": "jepa_graph.inference.landscape",
    "plot_energy_along": "jepa_graph.inference.landscape",
    "train": "jepa_graph.training.trainer",
    "Trainer": "jepa_graph.training.trainer",
    "format_spec": "jepa_graph.format.convert",
    "envs": "jepa_graph.envs",  # the sub-package itself: jg.envs.make(...)
    "plan": "jepa_graph.planning.flat",
    "control": "jepa_graph.planning.mpc",
}


def __getattr__(name: str):
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name])  # a missing module is an ImportError, never hidden
        value = module if module.__name__ == f"{__name__}.{name}" else getattr(module, name)  # or a sub-package
        globals()[name] = value  # cache: later lookups skip __getattr__
        return value
    raise AttributeError(f"module 'jepa_graph' has no attribute {name!r}")

__all__ = [
    "BlockRuntimeError", "BlockType", "CompiledModel", "Diagnostic", "DimInt", "Location", "Params", "SCALAR",
    "ShapeMismatch", "Spec", "SpecError", "TType", "check", "compile", "ema_momentum", "get_block", "list_blocks",
    "from_dict", "load", "loads", "register_block", "vec",
]
