"""IR-to-IR passes: lowering (fusion) and tensor-parallel sharding."""
