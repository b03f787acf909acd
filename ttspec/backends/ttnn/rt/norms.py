"""Norm settings of the generated programs."""

import ttnn

# distributed norms: float32 statistics, accumulated in float32
STATISTICS_KERNEL = ttnn.WormholeComputeKernelConfig(
    math_fidelity=ttnn.MathFidelity.HiFi4, math_approx_mode=False, fp32_dest_acc_en=True, packer_l1_acc=False
)
