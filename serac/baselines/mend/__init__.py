"""MEND (Mitchell et al., 2022, "Fast Model Editing at Scale"): small editor networks, trained once,
map the rank-one pieces of a fine-tuning gradient to a weight update that makes an edit take on its
input and rephrasings while leaving unrelated inputs alone.

- :mod:`.config`: :class:`MendConfig`, the typed training / artifact config;
- :mod:`.model`: where to edit (the MLP matrices of the last blocks, found from the module
  structure) and the split forward pass (frozen bottom once, edited top blocks many times);
- :mod:`.editor`: :class:`MendEditor`, the networks, and the artifact's save / load;
- :mod:`.edit`: gradients of an edit batch, their transformation, and the weight update;
- :mod:`.train`: the training loop (``serac train --method mend``);
- :mod:`.method`: ``mend`` as an evaluation :class:`~serac.eval.methods.EditingMethod`.
"""

from serac.baselines.mend.config import MendConfig
from serac.baselines.mend.editor import MendEditor, load_editor, save_editor

__all__ = ["MendConfig", "MendEditor", "load_editor", "save_editor"]
