"""nbswarm's JupyterHub spawner: declares NotebookServer resources, the operator runs them."""
from .names import escape_dns, resource_name
from .spawner import NotebookServerSpawner, SpawnFailed

__all__ = ["NotebookServerSpawner", "SpawnFailed", "escape_dns", "resource_name"]
__version__ = "0.1.0"
