"""What a body fit returns (mp3d.body.fit.fit_smplify), apart from the fitting itself, so that
code that saves or reads fits (mp3d.body.keypoints.save_fit) does not import the algorithm."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

__all__ = ["FitResult"]


@dataclass
class FitResult:
    """What fit_smplify returns; B people (B = 1 for unbatched keypoints)."""

    betas: torch.Tensor  # [B,S]
    body_pose: torch.Tensor  # [B,3(J-1)] axis-angle, radians
    global_orient: torch.Tensor  # [B,3] axis-angle, radians
    transl: torch.Tensor  # [B,3] model units (world frame with a viewmat, else camera frame)
    joints: torch.Tensor  # [B,J,3] fitted joints in the same frame
    projected: torch.Tensor  # [B,J,2] fitted joints in the image, pixels
    joint_errors: torch.Tensor  # [B,J] reprojection error of each joint, pixels
    initial_joint_errors: torch.Tensor  # [B,J] the same at the start of stage 2
    confidences: torch.Tensor  # [B,J] the confidences fitted with
    final_loss: torch.Tensor  # [B] objective E at the end (last prior weights)
    # Stage name -> E at each iteration, of each person's best heading, mean over people.
    losses: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0

    def params(self) -> dict[str, torch.Tensor]:
        """betas, body_pose, global_orient and transl, ready for SMPL.forward(**params)."""
        return {
            "betas": self.betas,
            "body_pose": self.body_pose,
            "global_orient": self.global_orient,
            "transl": self.transl,
        }

    def mean_error(self) -> torch.Tensor:
        """Confidence-weighted mean reprojection error [B] in pixels over joints with c > 0."""
        weights = self.confidences
        return (weights * self.joint_errors).sum(dim=1) / weights.sum(dim=1)
