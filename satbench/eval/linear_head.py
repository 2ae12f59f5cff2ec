"""SatDINO's linear head (``LinearClassifier``): its state as saved in checkpoints, and strict loading of it."""

from __future__ import annotations

from torch import Tensor, nn

from satbench.errors import WeightsError


class LinearClassifier(nn.Module):
    """SatDINO's ``LinearClassifier``: one ``nn.Linear`` (key names ``linear.weight``/``linear.bias``)."""

    def __init__(self, dim: int, num_labels: int, init_std: float = 0.01) -> None:
        super().__init__()
        self.num_labels = num_labels
        self.linear = nn.Linear(dim, num_labels)
        self.linear.weight.data.normal_(mean=0.0, std=init_std)
        self.linear.bias.data.zero_()

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x.view(x.size(0), -1))


def head_state(head: nn.Module) -> dict[str, Tensor]:
    """The head's ``{'linear.weight', 'linear.bias'}`` on the CPU (no ``module.`` prefix)."""
    sd = head.state_dict()
    return {k.removeprefix("module."): v.detach().cpu().clone() for k, v in sd.items()}


def load_linear_head(state: dict[str, Tensor], dim: int, *, where: str = "linear_head") -> LinearClassifier:
    """A :class:`LinearClassifier` holding ``state`` (``module.`` prefix allowed), loaded strictly."""
    sd = {k.removeprefix("module."): v for k, v in state.items()}
    if sorted(sd) != ["linear.bias", "linear.weight"]:
        raise WeightsError(f"{where}: expected linear.weight and linear.bias, got {sorted(sd)}")
    w = sd["linear.weight"]
    if w.ndim != 2 or w.shape[1] != dim:
        raise WeightsError(f"{where}: linear.weight {tuple(w.shape)} does not fit feature dim {dim}")
    head = LinearClassifier(dim, w.shape[0])
    head.load_state_dict(sd, strict=True)
    return head


