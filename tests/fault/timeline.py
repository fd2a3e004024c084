"""What the fault tables share: reading clipper-bench's --timeline file."""

def read_timeline(path):
    """clipper-bench's --timeline file: [(scheduled Unix s, outcome, latency
    us)] and the count of each outcome (0 none, 1 prediction, 2 default,
    3 error)."""
    rows = []
    with open(path) as f:
        for line in f:
            at, kind, lat = line.split()
            rows.append((int(at) / 1e6, int(kind), int(lat)))
    counts = [0, 0, 0, 0]
    for r in rows:
        counts[r[1]] += 1
    return rows, counts
