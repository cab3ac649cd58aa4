"""A province's weekly brief: its content, and its PDF and spreadsheet files."""
