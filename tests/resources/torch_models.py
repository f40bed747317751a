"""Small PyTorch modules for the flavor tests: one TorchScript compiles, one it cannot."""

from __future__ import annotations

import torch
from torch import nn


class Mlp(nn.Module):
    """A two-layer perceptron; scriptable."""

    def __init__(self, inputs: int = 4, hidden: int = 8, outputs: int = 3) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class Unscriptable(nn.Module):
    """Branches summed with a generator expression, which TorchScript cannot compile."""

    def __init__(self, inputs: int, hidden: int = 5) -> None:
        super().__init__()
        self.branches = nn.ModuleList([nn.Linear(inputs, hidden), nn.Linear(inputs, hidden)])
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(sum(torch.tanh(branch(x)) for branch in self.branches))
