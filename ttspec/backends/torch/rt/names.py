"""Parameter names of the PyTorch programs: where a spec label is not a usable Python attribute,
the program's attribute differs from the ttspec name."""


def ttspec_name(model, name):
    """A torch state_dict name as ttspec names the parameter: where a label is not a usable Python
    attribute (a keyword, a builtin, an nn.Module member ...), its attribute differs (LABELS)."""
    module, parts = model, []
    for part in name.split("."):
        parts.append(getattr(type(module), "LABELS", {}).get(part, part))
        module = getattr(module, part, None)
    return ".".join(parts)
