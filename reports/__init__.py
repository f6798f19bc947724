"""Reading result tables: statistics, cross-check verdicts, sanity flags, tables, figures, HTML.

Never imports ``adapters``: reports judge results, they do not produce them.
"""
