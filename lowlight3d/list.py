"""Print every registry of the toolkit: ``python -m lowlight3d.list [--kind arch] [--custom-imports mod ...]``.

Entries come from BasicSR itself, from lowlight3d, from installed plug-ins (``baselines``) and from any modules
given with ``--custom-imports``; each name is shown with the module that defines it.
"""
import argparse

import lowlight3d  # noqa: F401  (registration)
from lowlight3d.utils.registry import REGISTRIES, import_custom_modules, load_plugins

__all__ = ['registry_listing', 'main']


def registry_listing(kinds=None):
    """``{kind: [(name, defining module), ...]}`` for the selected registry kinds (all by default)."""
    load_plugins()
    listing = {}
    for kind, registry in REGISTRIES.items():
        if kinds and kind not in kinds:
            continue
        listing[kind] = sorted((name, getattr(obj, '__module__', '?')) for name, obj in registry)
    return listing


def main(argv=None):
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description='List registered archs, models, losses, datasets and metrics.')
    parser.add_argument('--kind', nargs='+', choices=list(REGISTRIES), help='Only these registries.')
    parser.add_argument('--custom-imports', nargs='+', default=[], help='Also import these modules first.')
    args = parser.parse_args(argv)
    import_custom_modules(args.custom_imports)
    for kind, entries in registry_listing(args.kind).items():
        print(f'{kind} ({len(entries)}):')
        width = max((len(n) for n, _ in entries), default=0)
        for name, module in entries:
            print(f'  {name:<{width}}  {module}')


if __name__ == '__main__':
    main()
