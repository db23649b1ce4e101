"""Sources: one module per kind; each turns what it reads into RawItem values. Only http.py touches the network."""
