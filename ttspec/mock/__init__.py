"""ttnn's mock device mode, packaged: cluster descriptors and a stand-in SFPI toolchain (see README.md)."""
