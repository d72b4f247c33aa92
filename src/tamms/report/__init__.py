"""Reports: pictures (figures.py), a self-contained HTML writer (html.py), the papers' published numbers."""
