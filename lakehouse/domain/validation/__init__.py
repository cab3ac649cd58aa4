"""The rules a price or reading is judged by: the hard rules, the statistical judge of a
series (pandas), its state, the holds and their decisions, the verdicts' names, and the on-demand
check of a price."""
