"""Result rows as CSV files and Markdown tables (test.py, evaluate.py and benchmark scripts share these)."""
import csv

__all__ = ['write_rows_csv', 'format_value', 'format_table']


def write_rows_csv(rows, path, digits=6):
    """Write dict rows to ``path`` atomically; columns are the union of keys in first-seen order.

    Returns:
        str: ``path``.
    """
    from lowlight3d.utils.checkpoint import atomic_write  # imports torch: only when a file is written
    columns = []
    for row in rows:
        columns += [k for k in row if k not in columns]

    def write(tmp):
        with open(tmp, 'w', newline='', encoding='utf-8') as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            for row in rows:
                writer.writerow({k: format_value(row.get(k, ''), digits=digits) for k in columns})

    return atomic_write(path, write)


def format_value(value, digits=4):
    """Floats with ``digits`` decimals; an exception (an unavailable metric) as ``n/a (reason)``; else ``str``."""
    if isinstance(value, float):
        return f'{value:.{digits}f}'
    if isinstance(value, BaseException):
        return 'n/a (' + ' '.join(str(value).split()) + ')'
    return str(value)


def format_table(rows, digits=4):
    """A Markdown table of dict rows (columns: union of keys in first-seen order).

    Values of the form ``'n/a (reason)'`` are shown as ``n/a [k]`` with the distinct reasons listed as
    numbered notes under the table, so that the table stays readable.
    """
    if not rows:
        return '(no rows)'
    columns = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    notes = []

    def cell(value):
        text = format_value(value, digits)
        if text.startswith('n/a (') and text.endswith(')'):
            if text not in notes:
                notes.append(text)
            return f'n/a [{notes.index(text) + 1}]'
        return text

    lines = ['| ' + ' | '.join(columns) + ' |', '|' + '---|' * len(columns)]
    for row in rows:
        lines.append('| ' + ' | '.join(cell(row.get(k, '')) for k in columns) + ' |')
    lines += [f'[{i + 1}] {note[5:-1]}' for i, note in enumerate(notes)]
    return '\n'.join(lines)
