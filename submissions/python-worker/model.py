"""The stand-in "model": threshold-baseline's method (submissions/threshold-baseline), in
pure Python. Replace this file with your own network; worker.py only needs load() and
predict().

Every 2-D mask is one Python int per axial slice, bit y * nx + x set for pixel (x, y), so
that morphology is a handful of shifts on whole slices:
1. the lungs: air-like voxels inside the body (the room is the air connected to the border),
   holes filled;
2. ground glass: lung voxels denser than aerated lung; opened and closed, and small clusters
   away from the chest wall (crowded vessels around the hila) dropped;
3. consolidation: soft tissue where the mirrored hemithorax is aerated lung, grown in 3-D;
4. involvement, stage, and class probabilities from the lesion pattern.
"""

import json
import math


def load(path):
    """Reads the "weights": the method's thresholds and coefficients."""
    with open(path) as f:
        return json.load(f)


class Grid:
    """Morphology on the bit masks of one nx x ny slice; outside the slice counts as unset."""

    def __init__(self, nx, ny):
        self.nx, self.ny = nx, ny
        self.full = (1 << (nx * ny)) - 1
        self.row = (1 << nx) - 1
        first_column = sum(1 << (y * nx) for y in range(ny))
        self.not_first = self.full ^ first_column
        self.not_last = self.full ^ (first_column << (nx - 1))
        self.border = first_column | (first_column << (nx - 1)) | self.row | (
            self.row << ((ny - 1) * nx))

    def bits(self, flags):
        """The mask of a sequence of truth values, pixel 0 first."""
        return int(bytes(flags).translate(TO_DIGITS)[::-1], 2)

    def flags(self, mask):
        """The mask as bytes of 0 and 1, pixel 0 first."""
        return format(mask, f"0{self.nx * self.ny}b")[::-1].encode().translate(FROM_DIGITS)

    def dilate(self, m, r=1):
        for _ in range(r):
            h = m | ((m << 1) & self.not_first) | ((m >> 1) & self.not_last)
            m = (h | (h << self.nx) | (h >> self.nx)) & self.full
        return m

    def erode(self, m, r=1):
        for _ in range(r):
            h = m & (m << 1) & self.not_first & (m >> 1) & self.not_last
            m = h & (h << self.nx) & (h >> self.nx)
        return m

    def grow(self, m):
        """m and its 4-neighbours."""
        return (m | ((m << 1) & self.not_first) | ((m >> 1) & self.not_last)
                | (m << self.nx) | (m >> self.nx)) & self.full

    def flood_from_border(self, passable):
        reached, last = self.border & passable, -1
        while reached != last:
            last, reached = reached, self.grow(reached) & passable
        return reached

    def rows(self, m):
        """(y, row bits) of every non-empty row."""
        for y in range(self.ny):
            row = (m >> (y * self.nx)) & self.row
            if row:
                yield y, row

    def mirror(self, m, cx):
        """Each row mirrored about column cx: pixel x takes the value of pixel 2 cx - x."""
        shift = round(2 * cx) - (self.nx - 1)
        out = 0
        for y, row in self.rows(m):
            r = int(format(row, f"0{self.nx}b")[::-1], 2)
            r = (r << shift if shift >= 0 else r >> -shift) & self.row
            out |= r << (y * self.nx)
        return out

    def envelope(self, m):
        """Each row filled between its outermost set pixels."""
        out = 0
        for y, row in self.rows(m):
            first, last = (row & -row).bit_length() - 1, row.bit_length() - 1
            out |= ((1 << (last + 1)) - (1 << first)) << (y * self.nx)
        return out


TO_DIGITS = bytes.maketrans(b"\0\1", b"01")
FROM_DIGITS = bytes.maketrans(b"01", b"\0\1")


def predict(volume, w):
    """Returns (mask bytes in file order, [p_covid, p_other_pneumonia, p_normal],
    involvement_pct, stage)."""
    nx, ny, nz = volume.shape
    sx, sy, sz = volume.spacing
    g, plane, hu = Grid(nx, ny), nx * ny, volume.voxels
    px = min(sx, sy)
    air_hu, ggo_hu, (dense_lo, dense_hi) = w["air_hu"], w["ggo_hu"], w["dense_hu"]

    # 1. Body, air inside it, lungs; the body's midline.
    air_in, lung, high, dense, centres = [], [], [], [], []
    for z in range(nz):
        s = hu[z * plane:(z + 1) * plane]
        air = g.bits(v < air_hu for v in s)
        body = g.full ^ g.flood_from_border(air)
        air_in.append(air & body)
        lung.append(g.full ^ g.flood_from_border(g.full ^ air_in[-1]) if air_in[-1] else 0)
        high.append(g.bits(v > ggo_hu for v in s))
        dense.append(g.bits(dense_lo <= v <= dense_hi for v in s) & body)
        spans = [((row & -row).bit_length() - 1, row.bit_length() - 1) for _, row in g.rows(body)]
        weight = sum(last - first + 1 for first, last in spans)
        if weight:
            centres.append(sum((last - first + 1) * (first + last) / 2
                               for first, last in spans) / weight)
    cx = sorted(centres)[len(centres) // 2] if centres else (nx - 1) / 2

    # 2. Ground glass and consolidation candidates, per slice.
    tol = max(1, round(w["asymmetry_tolerance_mm"] / px))
    tol_z = max(1, round(w["asymmetry_tolerance_mm"] / sz))
    r_periph = int(w["peripheral_mm"] / px)
    ggo, cand, seed, periph = [], [], [], []
    for z in range(nz):
        # Opening drops the one-pixel partial-volume rims along the pleura and around
        # vessels; closing fills the vessels crossing a lesion.
        raw = air_in[z] & high[z]
        ggo.append(g.erode(g.dilate(g.dilate(g.erode(raw)))) & air_in[z])
        c = dense[z] & g.mirror(g.dilate(air_in[z]), cx)
        c = g.dilate(g.erode(c))
        cand.append(c)
        # Seeds: wider than the tolerated anatomical asymmetry, the mirror lung also in the
        # slices above and below.
        window = air_in[z - tol_z:z + tol_z + 1] if z >= tol_z else []
        air_z = g.full if len(window) == 2 * tol_z + 1 else 0
        for a in window:
            air_z &= a
        seed.append(g.erode(c, tol) & g.mirror(g.dilate(air_z), cx))
        periph.append(g.full ^ g.erode(g.envelope(lung[z]), r_periph))

    # 3. Consolidation: the candidate regions (6-connected in 3-D) that hold a seed.
    cons = grow_3d(g, seed, cand)

    # 3b. Drop central ground-glass clusters smaller than min_central_ggo_ml.
    voxel_ml = sx * sy * sz / 1000.0
    remaining = list(ggo)
    for z in range(nz):
        while remaining[z]:
            start = [0] * nz
            start[z] = remaining[z] & -remaining[z]
            component = grow_3d(g, start, remaining)
            size = sum(c.bit_count() for c in component)
            peripheral = sum((c & p).bit_count() for c, p in zip(component, periph))
            drop = peripheral < 0.5 * size and size * voxel_ml < w["min_central_ggo_ml"]
            for k, c in enumerate(component):
                remaining[k] &= ~c
                if drop:
                    ggo[k] &= ~c

    # 4. Lesion = ground glass + consolidation, closed (air bronchograms), inside the lungs.
    right = sum(((1 << math.ceil(cx)) - 1) << (y * nx) for y in range(ny))  # x < cx
    n = dict(lung=0, lesion=0, ggo=0, cons=0, right=0, left=0, peripheral=0)
    lesion = []
    for z in range(nz):
        lungs = lung[z] | cons[z]
        les = g.erode(g.dilate(ggo[z] | cons[z])) & lungs
        lesion.append(les)
        n["lung"] += lungs.bit_count()
        n["lesion"] += les.bit_count()
        n["ggo"] += (les & ggo[z]).bit_count()
        n["cons"] += (les & cons[z]).bit_count()
        n["right"] += (les & right).bit_count()
        n["left"] += (les & ~right).bit_count()
        n["peripheral"] += (les & periph[z]).bit_count()

    involvement = 100.0 * n["lesion"] / n["lung"] if n["lung"] else 0.0
    if involvement < w["min_involvement_pct"]:
        involvement, lesion = 0.0, [0] * nz
    mask = b"".join(g.flags(m) for m in lesion)
    return (mask, classify(n, involvement, w), round(involvement, 4),
            stage(round(involvement, 4)))


def grow_3d(g, start, allowed):
    """The voxels of `allowed` 6-connected to `start` (both lists of slice masks)."""
    out = [s & a for s, a in zip(start, allowed)]
    changed = True
    while changed:
        changed = False
        for z in range(len(out)):
            new = g.grow(out[z])
            if z > 0:
                new |= out[z - 1]
            if z + 1 < len(out):
                new |= out[z + 1]
            new &= allowed[z]
            if new != out[z]:
                out[z], changed = new, True
    return out


def sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


def classify(n, involvement, w):
    """Smooth class probabilities from the lesion pattern."""
    # Abnormal when there is more than about half a percent of lesion, on a log scale.
    a = w["abnormal"]
    p_abnormal = sigmoid(a["slope"] * (math.log(involvement + 0.05) - math.log(a["half_pct"])))
    # Typical COVID-19: ground glass, both lungs, along the pleura; bacterial pneumonia:
    # dense, one lobe.
    c = w["covid"]
    ggo_frac = n["ggo"] / max(n["ggo"] + n["cons"], 1)
    bilateral = min(n["right"], n["left"]) / max(n["right"], n["left"], 1)
    peripheral = n["peripheral"] / max(n["lesion"], 1)
    score = (c["ggo"] * (ggo_frac - 0.5) + c["bilateral"] * (bilateral - 0.2)
             + c["peripheral"] * (peripheral - 0.5))
    p_covid = round(p_abnormal * sigmoid(score), 6)
    p_other = round(p_abnormal * (1.0 - sigmoid(score)), 6)
    return [p_covid, p_other, round(max(1.0 - p_covid - p_other, 0.0), 6)]


def stage(pct):
    """The challenge's severity bins: 0 %, (0, 5], (5, 25], (25, 50], > 50."""
    return 0 if pct <= 0 else 1 if pct <= 5 else 2 if pct <= 25 else 3 if pct <= 50 else 4
