"""What SPG and SGP share (docs/deviations.md): with protection forced to 1 on the whole encoder,
Adam and weight decay 1e-5, no encoder parameter or buffer moves in phase 2 (bit-exact) while the
new head learns."""

from __future__ import annotations

import pytest
import torch

from lhl.engine.trainer import Trainer
from lhl.methods.encoder_params import encoder_parameters
from lhl.methods.sgp import SGP, encoder_convs
from lhl.methods.spg import SPG
from lhl.registry import METHODS


class FullyProtectedSPG(SPG):
    """After each phase, importance 1 for every encoder parameter."""

    def update_protection(self, ctx, loader) -> None:
        super().update_protection(ctx, loader)
        self.importance = {n: torch.ones_like(p) for n, p in encoder_parameters(ctx.model).items()}


class FullyProtectedSGP(SGP):
    """After each phase, every encoder conv's basis is the whole input space with importance 1."""

    def update_protection(self, ctx, loader) -> None:
        super().update_protection(ctx, loader)
        for name, conv in encoder_convs(ctx.model).items():
            d = conv.weight[0].numel()
            self.bases[name], self.importance[name] = torch.linalg.qr(torch.randn(d, d))[0], torch.ones(d)


@pytest.mark.parametrize("name,method_cls", [("spg-fully-protected", FullyProtectedSPG),
                                             ("sgp-fully-protected", FullyProtectedSGP)])
def test_end_to_end_fully_protected_encoder_is_bit_exact(name, method_cls, smoke_config, tmp_path, record_phase_2):
    METHODS.register(name, overwrite=True)(method_cls)
    config = smoke_config("tasks=[segmentation,depth]", "train.weight_decay=1e-5", method=name)
    trainer = Trainer(config, tmp_path / "run", quiet=True)
    states = record_phase_2(trainer)
    trainer.run()
    record_phase_2.assert_frozen_encoder(states)
