"""Reports: the figures scaling-law researchers read, and one self-contained HTML page."""
