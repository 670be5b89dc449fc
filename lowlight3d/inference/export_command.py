"""``scripts/export_model.py``: option file + weights -> self-contained model file (or prior file), optional ONNX."""
import argparse

__all__ = ['parse_export_args', 'export_main']


def parse_export_args(argv=None):
    """Command-line arguments of ``scripts/export_model.py``."""
    p = argparse.ArgumentParser(description='Write a self-contained lowlight3d model file (or 3D prior file).')
    p.add_argument('-opt', '--opt', required=True, help='Training or test option file of the method.')
    p.add_argument('--weights', default=None, help='net_g_*.pth (default: path.pretrain_network_g of the file).')
    p.add_argument('--out', required=True, help='Model file to write (.pth).')
    p.add_argument('--prior', action='store_true',
                   help='The option file is a 3D prior stage (TriplaneDDPM / regressor): write its prior file.')
    p.add_argument('--generator_weights', default=None, help='With --prior: net_generator_*.pth (default: the '
                   "file's path.pretrain_network_generator).")
    p.add_argument('--face_size', type=int, default=None, help='Alignment size of faces (default: test gt_size/256).')
    p.add_argument('--prior_steps', type=int, default=None, help='Default sampling steps of the 3D prior.')
    p.add_argument('--onnx', default=None, help='Also export the network to this ONNX file (parity checked).')
    p.add_argument('--allow_untrained', action='store_true', help='Export untrained networks (tests/timing only).')
    p.add_argument('--cfg-options', nargs='+', default=[], metavar='KEY=VALUE', help='Option overrides.')
    p.add_argument('--overwrite', action='store_true', help='Replace an existing --out / --onnx file.')
    return p.parse_args(argv)


def _check_targets(args):
    """Refuse to replace an existing file (or write onto a folder, or onto the weights read) without --overwrite."""
    import os.path as osp

    from lowlight3d.utils.options import load_config
    paths = load_config(args.opt).get('path') or {}
    read = (args.opt, args.weights or paths.get('pretrain_network_g'),
            args.generator_weights or paths.get('pretrain_network_generator'))
    sources = {osp.realpath(p) for p in read if isinstance(p, str) and p}
    for flag, path in (('--out', args.out), ('--onnx', args.onnx)):
        if not path:
            continue
        if osp.isdir(path):
            raise ValueError(f'{flag} {path} is a folder: give the file to write (e.g. {osp.join(path, "model.pth")})')
        if osp.realpath(path) in sources:
            raise ValueError(f'{flag} {path} is one of the files the export reads: write the model elsewhere')
        if osp.exists(path) and not args.overwrite:
            raise ValueError(f'{flag} {path} exists: choose another name, or add --overwrite to replace it')


def export_main(argv=None):
    """Run the export; prints what was written and returns the record."""
    args = parse_export_args(argv)
    _check_targets(args)
    if args.prior:
        from lowlight3d.models.prior_file import prior_record_fingerprint, save_prior_file
        weights = args.weights
        if not weights:
            from lowlight3d.utils.options import load_config
            weights = (load_config(args.opt).get('path') or {}).get('pretrain_network_g')
        if not weights:
            raise ValueError(f'{args.opt}: give --weights (the prior stage\'s net_g_*.pth)')
        overrides = {'steps': args.prior_steps} if args.prior_steps else {}
        record = save_prior_file(args.out, ddpm_options=args.opt, denoiser_weights=weights,
                                 generator_weights=args.generator_weights, **overrides)
        print(f'prior file: {args.out} (fingerprint {prior_record_fingerprint(record)[:16]})')
        return record
    from lowlight3d.inference.model_file import export_model, save_model_file
    record = export_model(args.opt, args.weights, args.cfg_options, args.face_size, args.allow_untrained,
                          args.prior_steps)
    save_model_file(record, args.out)
    prior = ' + 3D prior' if record['prior'] is not None else ''
    print(f"model file: {args.out} ({record['name']}, {record['model_type']}, {record['network']}{prior}, faces "
          f"{record['face_size']} px)")
    if args.onnx:
        from lowlight3d.inference.loaded_model import LoadedModel
        from lowlight3d.inference.onnx_export import OnnxExportError, export_onnx, onnx_parity
        model = LoadedModel(record)
        try:
            export_onnx(model, args.onnx)
        except OnnxExportError as err:
            print(f'onnx: not exported: {err}')
            return record
        parity = onnx_parity(model, args.onnx)
        print(f"onnx: {args.onnx}, max |onnxruntime - torch| = {parity['max_abs']:.2e} at sizes {parity['sizes']}")
    return record
