"""What comes in, parsed: CSV price and sensor reports (official export formats too), news
files and headlines, and times written by people."""
