"""Files and transfers: atomic writes, bounded reads of untrusted files, locks, archives, downloads, hub URLs."""
