"""Training curves: losses and validation metrics against iterations, written as one PNG."""
from lowlight3d.utils.checkpoint import atomic_write

__all__ = ['plot_training_curves']


def plot_training_curves(history, path, title=''):
    """Plot ``history`` into ``path`` (PNG): a loss panel (log scale) and one panel per validation metric.

    Args:
        history (dict): ``{'losses': [{'iter': i, 'l_x': v, ...}], 'metrics': [{'iter': i, 'dataset': d,
            'psnr': v, ...}]}`` as the training pipeline records it.
        path (str): Output PNG, written atomically.
        title (str): Figure title (the experiment name).
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    losses = history.get('losses', [])
    metrics = history.get('metrics', [])
    loss_keys = sorted({k for row in losses for k in row if k.startswith('l_')})
    metric_keys = sorted({(row['dataset'], k) for row in metrics for k, v in row.items()
                          if k not in ('iter', 'dataset') and isinstance(v, (int, float))})
    panels = 1 + len(metric_keys)
    fig, axes = plt.subplots(1, panels, figsize=(4.5 * panels, 3.4), squeeze=False)
    ax = axes[0][0]
    for key in loss_keys:
        pts = [(row['iter'], row[key]) for row in losses if key in row and row[key] > 0]
        if pts:
            ax.plot(*zip(*pts), label=key)
    ax.set_xlabel('iteration')
    ax.set_title('training losses')
    if loss_keys:
        ax.set_yscale('log')
        ax.legend(fontsize=7)
    for ax, (dataset, key) in zip(axes[0][1:], metric_keys):
        pts = [(row['iter'], row[key]) for row in metrics
               if row['dataset'] == dataset and isinstance(row.get(key), (int, float))]
        ax.plot(*zip(*pts), marker='o')
        ax.set_xlabel('iteration')
        ax.set_title(f'{dataset}: {key}')
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=90), suffix='.png')
    finally:
        plt.close(fig)
