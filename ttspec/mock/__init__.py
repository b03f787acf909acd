"""ttnn's mock device mode, packaged: cluster descriptors and a stand-in SFPI toolchain (docs/verification.md)."""
