"""Land cover of one synthetic scene, and the events that change it with elapsed time.

A scene is a base land-cover map plus *stages*: each stage gives, per pixel, the day it starts
(`onset`, days since 1970-01-01, `inf` = never) and the class it turns the pixel into. The land
cover at any date is the base with every stage whose onset has passed applied in order, so it is
an exact function of the date: change masks follow from it and always agree with the maps, and
the amount of change between two dates grows with the time between them. Events move at a
constant speed (a front advancing so many pixels a day), so the future keeps the trend of the
history. Crop rotation is the one periodic event: field classes follow a crop calendar by day of
year and a rotation of crops by year.

Everything here is vectorised numpy on `[H, W]` grids; nothing is drawn pixel by pixel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

CLASS_NAMES: list[str] = [
    "water",
    "forest",
    "grass",
    "crop_green",
    "crop_ripe",
    "crop_ploughed",
    "bare_soil",
    "road",
    "building",
    "construction_site",
]
(WATER, FOREST, GRASS, CROP_GREEN, CROP_RIPE, CROP_PLOUGHED, BARE, ROAD, BUILDING, CONSTRUCTION) = range(10)
CROPS = (CROP_GREEN, CROP_RIPE, CROP_PLOUGHED)

CATEGORIES: list[str] = [
    "no_change",
    "urban_expansion",
    "road_extension",
    "deforestation",
    "water_level",
    "crop_rotation",
    "construction",
]

# unit vectors (drow, dcol) of the directions events move in; rows grow southward
DIRECTIONS: dict[str, tuple[float, float]] = {
    "eastward": (0.0, 1.0),
    "westward": (0.0, -1.0),
    "northward": (-1.0, 0.0),
    "southward": (1.0, 0.0),
    "north-eastward": (-0.7071, 0.7071),
    "north-westward": (-0.7071, -0.7071),
    "south-eastward": (0.7071, 0.7071),
    "south-westward": (0.7071, -0.7071),
}
CARDINAL = ["eastward", "westward", "northward", "southward"]

# crop calendars: (day-of-year upper bound, class) pairs; fallow fields stay grass all year
_CALENDARS: dict[str, list[tuple[int, int]]] = {
    "summer": [(120, CROP_PLOUGHED), (210, CROP_GREEN), (270, CROP_RIPE), (366, CROP_PLOUGHED)],
    "winter": [(150, CROP_GREEN), (210, CROP_RIPE), (280, CROP_PLOUGHED), (366, CROP_GREEN)],
    "fallow": [(366, GRASS)],
}
_ROTATIONS = [["summer", "winter"], ["summer", "winter", "fallow"], ["winter", "summer", "summer"], ["summer", "fallow"]]


@dataclass
class Stage:
    """Pixels enter class `value` on day `onset` (float64 `[H, W]`, inf = never)."""

    onset: np.ndarray
    value: int | np.ndarray


@dataclass
class CropRotation:
    """Per parcel: a rotation of crop kinds by year, and a few days of calendar shift."""

    field_mask: np.ndarray  # bool [H, W]: field pixels that follow the calendar
    parcel_id: np.ndarray  # int [H, W]
    cycles: list[list[str]]  # per parcel
    offsets: np.ndarray  # int [P] year offset into the cycle
    shifts: np.ndarray  # int [P] days of calendar shift (fields are not sown the same day)

    def classes_at(self, day: float) -> np.ndarray:
        """Class per parcel `[P]` at `day` (days since 1970-01-01)."""
        out = np.empty(len(self.cycles), dtype=np.int64)
        for p, cycle in enumerate(self.cycles):
            date = np.datetime64("1970-01-01") + np.timedelta64(int(day) + int(self.shifts[p]), "D")
            year = int(str(date)[:4])
            doy = int((date - np.datetime64(f"{year}-01-01")).astype(int))
            kind = cycle[(year + int(self.offsets[p])) % len(cycle)]
            out[p] = next(c for bound, c in _CALENDARS[kind] if doy < bound)
        return out


@dataclass
class Scene:
    """The land-cover model of one sequence (static layout + time-driven events)."""

    size: int
    category: str
    base: np.ndarray  # int64 [H, W]
    stages: list[Stage] = field(default_factory=list)
    rotation: CropRotation | None = None
    parcel_id: np.ndarray | None = None  # int [H, W], field parcels (texture: stripes per parcel)
    roof_id: np.ndarray | None = None  # int [H, W], one id per building (roof colour)
    depth: np.ndarray | None = None  # float [H, W] in [0, 1], water depth proxy (darker lake centre)
    info: dict[str, Any] = field(default_factory=dict)  # layout facts the texts use (road course...)
    events: list[dict[str, Any]] = field(default_factory=list)

    def landcover_at(self, days: np.ndarray | list[float]) -> np.ndarray:
        """Land cover int64 `[N, H, W]` at each day of `days` (days since 1970-01-01)."""
        days = np.asarray(days, dtype=np.float64)
        lc = np.repeat(self.base[None], len(days), axis=0)  # [N, H, W]
        if self.rotation is not None:
            rot = self.rotation
            ids = rot.parcel_id[rot.field_mask]
            for k, day in enumerate(days):
                lc[k][rot.field_mask] = rot.classes_at(day)[ids]
        for stage in self.stages:
            reached = stage.onset[None] <= days[:, None, None]  # [N, H, W]
            if np.isscalar(stage.value) or np.ndim(stage.value) == 0:
                lc[reached] = int(stage.value)
            else:
                lc = np.where(reached, stage.value[None], lc)
        return lc


# --- helpers --------------------------------------------------------------------------------------
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    return yy, xx


def _along(direction: str, size: int, yy: np.ndarray, xx: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Coordinate along `direction` measured from the edge it starts at, the one across it, and the extent."""
    dy, dx = DIRECTIONS[direction]
    c = (size - 1) / 2.0
    s = (yy - c) * dy + (xx - c) * dx  # [H, W]
    p = -(yy - c) * dx + (xx - c) * dy  # perpendicular coordinate
    s = s - s.min()
    p = p - p.min()
    return s, p, float(s.max())


def _scaled(size: int, px: float) -> int:
    """A length given in pixels of a 64-px tile, scaled to this tile size (at least 1)."""
    return max(1, int(round(px * size / 64.0)))


# --- base layout ----------------------------------------------------------------------------------
def _parcels(rng: np.random.Generator, size: int) -> np.ndarray:
    """Field parcels: an irregular grid of rectangles, int id `[H, W]`."""
    def cuts(n: int) -> np.ndarray:
        inner = np.sort(rng.uniform(0.12, 0.88, n - 1)) * size
        return np.concatenate([[0.0], inner, [size + 1.0]])

    n_cols = int(rng.integers(2, 5)) * max(1, size // 64)
    n_rows = int(rng.integers(2, 5)) * max(1, size // 64)
    xc, yc = cuts(n_cols), cuts(n_rows)
    idx = np.arange(size)
    col = np.searchsorted(xc, idx, side="right") - 1
    row = np.searchsorted(yc, idx, side="right") - 1
    # some rows are split at their own column cuts, so the grid is not a chessboard
    pid = row[:, None] * n_cols + col[None, :]
    return pid.astype(np.int64)


def _base_layout(rng: np.random.Generator, size: int, noise: dict[str, np.ndarray], category: str) -> Scene:
    yy, xx = _grid(size)
    params = {
        "no_change": dict(forest=rng.uniform(0.0, 0.55), lake=0.35, road=0.5, hamlet=0.4),
        "urban_expansion": dict(forest=rng.uniform(0.0, 0.2), lake=0.15, road=0.3, hamlet=0.0),
        "road_extension": dict(forest=rng.uniform(0.0, 0.45), lake=0.2, road=0.0, hamlet=0.0),
        "deforestation": dict(forest=rng.uniform(0.6, 0.9), lake=0.15, road=0.3, hamlet=0.0),
        "water_level": dict(forest=rng.uniform(0.0, 0.35), lake=1.0, road=0.25, hamlet=0.2),
        "crop_rotation": dict(forest=rng.uniform(0.0, 0.2), lake=0.15, road=0.5, hamlet=0.3),
        "construction": dict(forest=rng.uniform(0.0, 0.2), lake=0.1, road=0.8, hamlet=0.5),
    }[category]
    info: dict[str, Any] = {}

    # 1. fields: each parcel a crop kind or grass, and a ploughing direction for its stripes
    pid = _parcels(rng, size)
    n_parcels = int(pid.max()) + 1
    parcel_cls = rng.choice([CROP_GREEN, CROP_RIPE, CROP_PLOUGHED, GRASS], size=n_parcels, p=[0.35, 0.2, 0.2, 0.25])
    base = parcel_cls[pid].astype(np.int64)
    field_mask = np.ones((size, size), dtype=bool)

    # 2. forest: a smooth blob field pushed toward one side, thresholded to the wanted fraction
    if params["forest"] > 0.03:
        side = DIRECTIONS[str(rng.choice(list(DIRECTIONS)))]
        grad = ((yy - size / 2) * side[0] + (xx - size / 2) * side[1]) / size
        f = noise["vcoarse"] + 1.5 * grad + 0.35 * noise["medium"]
        forest = f > np.quantile(f, 1.0 - params["forest"])
        base[forest] = FOREST
        field_mask &= ~forest

    # 3. lake: a bowl with a noisy shore; `elevation` < 1 is water, deeper toward the centre
    elevation = None
    if rng.random() < params["lake"]:
        cy, cx = rng.uniform(0.25, 0.75, 2) * size
        radius = rng.uniform(0.15, 0.28) * size
        elevation = np.hypot(yy - cy, xx - cx) / radius + 0.22 * noise["coarse"] + 0.06 * noise["medium"]
        water = elevation < 1.0
        base[water] = WATER
        field_mask &= ~water
        info["lake"] = (cy / size, cx / size, radius / size)
    info["elevation"] = elevation

    # 4. a main road crossing the scene (straight with a gentle bend)
    roads = np.zeros((size, size), dtype=bool)
    if rng.random() < params["road"]:
        course = str(rng.choice(["west_east", "north_south", "diagonal"]))
        width = rng.choice([1.0, 1.5, 2.0]) * size / 64.0
        bend = rng.uniform(-3, 3) * size / 64.0 * np.sin(np.pi * (xx if course != "north_south" else yy) / size)
        if course == "west_east":
            offset = rng.uniform(0.2, 0.8) * size
            dist = np.abs(yy - offset - bend)
        elif course == "north_south":
            offset = rng.uniform(0.2, 0.8) * size
            dist = np.abs(xx - offset - bend)
        else:
            sign = rng.choice([-1.0, 1.0])
            offset = rng.uniform(-0.25, 0.25) * size
            # a line at 45 degrees: distance to y = sign * (x - size/2) + size/2 + offset
            dist = np.abs((yy - size / 2 - offset) - sign * (xx - size / 2)) / np.sqrt(2) - 0.0 * bend
            course = "north_west_south_east" if sign > 0 else "south_west_north_east"
        roads = dist < width
        base[roads] = ROAD
        field_mask &= ~roads
        info["road"] = course

    # 5. a hamlet: a few houses next to the road
    roof_id = np.zeros((size, size), dtype=np.int64)
    if roads.any() and rng.random() < params["hamlet"]:
        ry, rx = np.nonzero(roads)
        n_houses = int(rng.integers(3, 9))
        hs = _scaled(size, 2)
        for k in range(n_houses):
            j = int(rng.integers(len(ry)))
            oy, ox = rng.choice([-4, -3, 2, 3], 2) * size / 64.0
            y0, x0 = int(ry[j] + oy), int(rx[j] + ox)
            y0, x0 = np.clip([y0, x0], 0, size - hs)
            box = (slice(y0, y0 + hs + int(rng.integers(0, 2))), slice(x0, x0 + hs + int(rng.integers(0, 2))))
            free = ~roads[box] & (base[box] != WATER)
            base[box] = np.where(free, BUILDING, base[box])
            roof_id[box] = np.where(free, 1 + k, roof_id[box])
            field_mask[box] &= ~free
        info["hamlet"] = True

    scene = Scene(size=size, category=category, base=base, parcel_id=pid, roof_id=roof_id, info=info)
    if elevation is not None:
        scene.depth = np.clip(1.0 - elevation, 0.0, 1.0)
    scene.info["field_mask"] = field_mask
    return scene


# --- events -----------------------------------------------------------------------------------------
def _progress_window(rng: np.random.Generator, extent: float, lo: float, hi: float) -> tuple[float, float]:
    """Front position at the first date and its travel until the future date (pixels)."""
    start = rng.uniform(lo, hi) * extent
    travel = rng.uniform(0.35, 0.6) * extent
    return start, travel


def _rate(scene: Scene, travel: float, t0: float, t_end: float, min_input_travel: float) -> float:
    """Speed (units per day) covering `travel` from the first to the future date, but at least
    `min_input_travel` between the first and the last input date, so the inputs always show change."""
    t_last = float(scene.info.get("t_last", t_end))
    return max(travel / max(t_end - t0, 1.0), min_input_travel / max(t_last - t0, 1.0))


def _urban_grid(rng: np.random.Generator, size: int, s: np.ndarray, p: np.ndarray):
    """Streets every `block` px, 2x2 houses in the corners of each block, gardens between.

    Returns (value map, lot key per pixel, street mask, house mask, block along-index, block size, shift).
    """
    block = int(rng.integers(7, 10)) if size <= 96 else int(rng.integers(7, 10)) * size // 64
    si = np.floor(s).astype(np.int64)
    pi = np.floor(p).astype(np.int64)
    s0, p0 = int(rng.integers(0, block)), int(rng.integers(0, block))
    u, v = (si + s0) % block, (pi + p0) % block
    bs, bp = (si + s0) // block, (pi + p0) // block
    street = (u == 0) | (v == 0)
    # lots of 3x3 px inside each block: a 2x2 house and a 1 px garden strip (a dense suburb)
    lu, lv = (u - 1) % 3, (v - 1) % 3
    fits = (u - 1) // 3 < (block - 1) // 3
    fits &= (v - 1) // 3 < (block - 1) // 3
    corner = (lu < 2) & (lv < 2) & fits
    lot = ((bs * 1000 + bp) * 16 + ((u - 1) // 3) * 4 + (v - 1) // 3)  # one key per house lot
    present = _hash01(lot, int(rng.integers(1 << 30))) < 0.85
    house = corner & ~street & present
    value = np.full((size, size), GRASS, dtype=np.int64)
    value[street] = ROAD
    value[house] = BUILDING
    return value, lot, street, house, bs, block, s0


def _hash01(keys: np.ndarray, salt: int) -> np.ndarray:
    """A deterministic pseudo-random number in [0, 1) per integer key (vectorised)."""
    x = (keys.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(salt)) & np.uint64(0xFFFFFFFFFFFFFFFF)
    x ^= x >> np.uint64(31)
    x = (x * np.uint64(0xBF58476D1CE4E5B9)) & np.uint64(0xFFFFFFFFFFFFFFFF)
    x ^= x >> np.uint64(29)
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def add_urban_expansion(scene: Scene, rng: np.random.Generator, t0: float, t_end: float, static: bool = False) -> None:
    """A town grows from one edge along a front: streets first, then lots (construction, then houses)."""
    size = scene.size
    yy, xx = _grid(size)
    direction = str(rng.choice(CARDINAL))
    s, p, extent = _along(direction, size, yy, xx)
    band_w = rng.uniform(0.55, 1.0) * size
    band_lo = rng.uniform(0.0, size - band_w)
    in_band = (p >= band_lo) & (p < band_lo + band_w) & (scene.base != WATER)
    value, lot, street, house, bs, block, s_shift = _urban_grid(rng, size, s, p - band_lo)
    start, travel = _progress_window(rng, extent, 0.15, 0.35)
    if static:
        travel = 0.0
    rate = 0.0 if static else _rate(scene, travel, t0, t_end, 0.15 * extent)  # px per day
    jitter = _hash01(lot, int(rng.integers(1 << 30))) * 0.6 * block  # lots are not all built at once
    lot_end = (bs + 1) * block - s_shift  # along-coordinate where the lot's block ends
    build_days = float(rng.uniform(150, 400))

    def onset(pos: np.ndarray) -> np.ndarray:
        if rate <= 0:
            return np.where(pos <= start, -np.inf, np.inf)
        return t0 + (pos - start) / rate

    on_street = np.where(in_band & street, onset(s), np.inf)
    # a whole lot is built at once, once the front has passed the end of its block
    on_lot = np.where(in_band & ~street, onset(lot_end + jitter), np.inf)
    scene.stages.append(Stage(on_street, ROAD))
    scene.stages.append(Stage(on_lot, CONSTRUCTION))
    scene.stages.append(Stage(on_lot + build_days, value))
    scene.roof_id = np.where(in_band & house, 100000 + lot % 100000, scene.roof_id)
    scene.info["town"] = {"direction": direction}
    if not static:
        scene.events.append(dict(
            type="urban_expansion", direction=direction,
            affected=in_band & (np.minimum(on_street, on_lot) <= t_end + 1) & (np.minimum(on_street, on_lot) > t0 - build_days),
            rate_px_per_year=rate * 365.25, classes_from=["grass", "crop_green", "crop_ripe", "crop_ploughed", "forest"],
            classes_to=["road", "construction_site", "building", "grass"], build_days=build_days,
        ))


def add_road_extension(scene: Scene, rng: np.random.Generator, t0: float, t_end: float) -> None:
    """A road grows in one direction at constant speed, its head cleared to bare soil first; some
    houses follow along it a while after the road has passed."""
    size = scene.size
    yy, xx = _grid(size)
    direction = str(rng.choice(list(DIRECTIONS)))
    s, p, extent = _along(direction, size, yy, xx)
    pc = rng.uniform(0.3, 0.7) * p.max()
    wiggle = rng.uniform(-2.5, 2.5) * size / 64.0 * np.sin(np.pi * s / extent * rng.uniform(0.5, 1.5))
    width = rng.choice([1.0, 1.5]) * size / 64.0
    offset = p - pc - wiggle  # signed distance from the centre line
    land = scene.base != WATER
    road = (np.abs(offset) < width) & land
    start, travel = _progress_window(rng, extent, 0.1, 0.3)
    rate = _rate(scene, travel, t0, t_end, 0.15 * extent)
    head_days = _scaled(size, 4) / rate  # the bare head runs ~4 px ahead of the paved road
    on_road = np.where(road, t0 + (s - start) / rate, np.inf)
    scene.stages.append(Stage(on_road - head_days, BARE))
    scene.stages.append(Stage(on_road, ROAD))

    classes_to = ["bare_soil", "road"]
    houses = np.zeros_like(road)
    on_house = np.full((size, size), np.inf)
    if rng.random() < 0.6:  # houses on 2x2 lots on both sides, built `lag` days after the road reached them
        hs = _scaled(size, 2)
        side = np.abs(offset) - width
        lot_s = np.floor(s / (hs + 1)).astype(np.int64)
        in_lot = (side >= 1) & (side < 1 + hs) & ((s % (hs + 1)) < hs) & land & (scene.base != ROAD)
        key = lot_s * 2 + (offset > 0)
        houses = in_lot & (_hash01(key, int(rng.integers(1 << 30))) < rng.uniform(0.35, 0.7))
        lag = float(rng.uniform(0.1, 0.3)) * max(t_end - t0, 1.0)
        on_house = np.where(houses, t0 + (lot_s * (hs + 1) - start) / rate + lag, np.inf)
        scene.stages.append(Stage(on_house, BUILDING))
        scene.roof_id = np.where(houses, 300000 + key % 100000, scene.roof_id)
        classes_to.append("building")
    scene.info["road"] = "extension"
    scene.info["road_direction"] = direction
    first_change = np.minimum(on_road - head_days, on_house)
    last_change = np.where(houses, on_house, on_road)
    scene.events.append(dict(
        type="road_extension", direction=direction,
        affected=(road | houses) & (first_change <= t_end + 1) & (last_change > t0),
        rate_px_per_year=rate * 365.25, classes_from=["grass", "crop_green", "crop_ripe", "crop_ploughed", "forest"],
        classes_to=classes_to,
    ))


def add_deforestation(scene: Scene, rng: np.random.Generator, t0: float, t_end: float) -> None:
    """Forest cleared along a ragged front; cleared land turns bare, then grass, then forest again."""
    size = scene.size
    yy, xx = _grid(size)
    direction = str(rng.choice(list(DIRECTIONS)))
    s, p, extent = _along(direction, size, yy, xx)
    s = s + 2.5 * size / 64.0 * scene_noise(scene)["medium"]  # ragged clearing edge
    pc = rng.uniform(0.3, 0.7) * p.max()
    half = rng.uniform(0.18, 0.4) * size + 2.0 * size / 64.0 * scene_noise(scene)["coarse"]
    band = (np.abs(p - pc) < half) & (scene.base == FOREST)
    start, travel = _progress_window(rng, extent, 0.05, 0.25)
    rate = _rate(scene, travel, t0, t_end, 0.12 * extent)
    bare_days = float(rng.uniform(300, 700))
    grass_days = float(rng.uniform(900, 1800))
    on_clear = np.where(band, t0 + (s - start) / rate, np.inf)
    scene.stages.append(Stage(on_clear, BARE))
    scene.stages.append(Stage(on_clear + bare_days, GRASS))
    scene.stages.append(Stage(on_clear + bare_days + grass_days, FOREST))
    scene.events.append(dict(
        type="deforestation", direction=direction,
        affected=band & (on_clear <= t_end + 1) & (on_clear + bare_days + grass_days > t0),
        rate_px_per_year=rate * 365.25, classes_from=["forest"], classes_to=["bare_soil", "grass", "forest"],
        bare_days=bare_days, grass_days=grass_days,
    ))


def add_water_level(scene: Scene, rng: np.random.Generator, t0: float, t_end: float) -> None:
    """The lake level rises or falls steadily; the shore follows the terrain's contour lines."""
    elevation = scene.info["elevation"]
    rising = bool(rng.random() < 0.5)
    delta = rng.uniform(0.25, 0.5)
    rate = _rate(scene, delta, t0, t_end, 0.1)  # elevation units per day
    land = (scene.base != ROAD) & (scene.base != BUILDING)
    if rising:
        flood = land & (elevation >= 1.0) & (elevation < 1.0 + delta * 1.3)
        on = np.where(flood, t0 + (elevation - 1.0) / rate, np.inf)
        scene.stages.append(Stage(on, WATER))
        classes_to = ["water"]
    else:
        dry = land & (elevation < 1.0) & (elevation > 1.0 - delta * 1.3)
        on = np.where(dry, t0 + (1.0 - elevation) / rate, np.inf)
        grass_after = float(rng.uniform(400, 800))
        scene.stages.append(Stage(on, BARE))
        scene.stages.append(Stage(on + grass_after, GRASS))
        classes_to = ["bare_soil", "grass"]
    cy, cx, _ = scene.info["lake"]
    scene.events.append(dict(
        type="water_level", direction="rising" if rising else "falling",
        affected=np.isfinite(on) & (on <= t_end + 1) & (on > t0),
        rate_level_per_year=rate * 365.25, classes_from=["water"] if not rising else ["grass", "forest", "crop_green", "crop_ripe", "crop_ploughed"],
        classes_to=classes_to, lake_centre=[float(cy), float(cx)],
    ))


def add_crop_rotation(scene: Scene, rng: np.random.Generator, t0: float, t_end: float) -> None:
    """Field parcels follow a crop calendar by season and a rotation of crops by year."""
    pid = scene.parcel_id
    n = int(pid.max()) + 1
    mask = scene.info["field_mask"] & np.isin(scene.base, (GRASS,) + CROPS)
    cycles = [_ROTATIONS[int(rng.integers(len(_ROTATIONS)))] for _ in range(n)]
    scene.rotation = CropRotation(
        field_mask=mask, parcel_id=pid, cycles=cycles,
        offsets=rng.integers(0, 3, n), shifts=rng.integers(-20, 21, n),
    )
    scene.events.append(dict(
        type="crop_rotation", direction=None, affected=mask,
        classes_from=["crop_green", "crop_ripe", "crop_ploughed", "grass"],
        classes_to=["crop_green", "crop_ripe", "crop_ploughed", "grass"],
    ))


def add_construction(scene: Scene, rng: np.random.Generator, t0: float, t_end: float) -> None:
    """A few sites, started one after another along a direction: construction site, then a building
    that goes up part by part across the site."""
    size = scene.size
    yy, xx = _grid(size)
    direction = str(rng.choice(list(DIRECTIONS)))
    s, _, extent = _along(direction, size, yy, xx)
    free = ~np.isin(scene.base, (WATER, ROAD, BUILDING))
    sites: list[tuple[int, int, int, int]] = []
    n_sites = int(rng.integers(3, 7))
    for _ in range(60):
        if len(sites) >= n_sites:
            break
        h, w = (rng.integers(7, 14, 2) * size / 64.0).astype(int)
        y0, x0 = int(rng.integers(0, size - h)), int(rng.integers(0, size - w))
        if free[y0:y0 + h, x0:x0 + w].mean() < 0.9:
            continue
        if any(y0 < b[0] + b[2] + 2 and b[0] < y0 + h + 2 and x0 < b[1] + b[3] + 2 and b[1] < x0 + w + 2 for b in sites):
            continue
        sites.append((y0, x0, int(h), int(w)))
    sites.sort(key=lambda b: float(s[b[0] + b[2] // 2, b[1] + b[3] // 2]))
    in_span = max(float(scene.info.get("t_last", t_end)) - t0, 1.0)
    on_site = np.full((size, size), np.inf)
    on_done = np.full((size, size), np.inf)
    final = np.full((size, size), BUILDING, dtype=np.int64)
    # one site after another along the direction, evenly from within the input dates to the future date;
    # each takes a bit longer than the spacing, so there is almost always a site in progress
    first = t0 + rng.uniform(0.0, 0.4) * in_span
    spacing = (t_end - first) / max(len(sites), 1)
    starts = first + np.arange(len(sites)) * spacing
    for k, (y0, x0, h, w) in enumerate(sites):
        box = (slice(y0, y0 + h), slice(x0, x0 + w))
        ok = free[box]
        t_start = float(starts[k])
        duration = float(spacing * rng.uniform(0.9, 1.6))
        on_site[box] = np.where(ok, t_start, np.inf)
        # the building goes up part by part across the site, in the event's direction, in the last 60%
        # of the works, so a site in progress changes a little between any two dates
        s_box = s[box]
        frac = (s_box - s_box.min()) / max(float(s_box.max() - s_box.min()), 1e-6)
        on_done[box] = np.where(ok, t_start + duration * (0.4 + 0.6 * frac), np.inf)
        ring = np.zeros((h, w), dtype=bool)
        ring[[0, -1], :] = True
        ring[:, [0, -1]] = True
        final[box] = np.where(ring, ROAD, BUILDING)  # a paved apron around the building
        # large roofs are split in two or three halls
        if w >= 9 and rng.random() < 0.5:
            final[y0 + 1:y0 + h - 1, x0 + w // 2] = ROAD
        scene.roof_id[box] = np.where(ok & (final[box] == BUILDING), 200000 + k * 10 + (xx[box] > x0 + w // 2), scene.roof_id[box])
    scene.stages.append(Stage(on_site, CONSTRUCTION))
    scene.stages.append(Stage(on_done, final))
    affected = np.isfinite(on_site) & (on_site <= t_end + 1) & (on_done > t0)
    scene.events.append(dict(
        type="construction", direction=direction, affected=affected, sites=[list(b) for b in sites],
        classes_from=["grass", "crop_green", "crop_ripe", "crop_ploughed", "forest", "bare_soil"],
        classes_to=["construction_site", "building", "road"],
    ))


_NOISE_CACHE_KEY = "_noise"


def scene_noise(scene: Scene) -> dict[str, np.ndarray]:
    return scene.info[_NOISE_CACHE_KEY]


def build_scene(rng: np.random.Generator, size: int, category: str, noise: dict[str, np.ndarray],
                t0: float, t_end: float, t_last: float | None = None) -> Scene:
    """The base layout for `category` with its event, dated by the first input day `t0`, the last
    input day `t_last` and the future day `t_end` (days since 1970-01-01)."""
    scene = _base_layout(rng, size, noise, category)
    scene.info[_NOISE_CACHE_KEY] = noise
    scene.info["t_last"] = t_end if t_last is None else t_last
    if category == "urban_expansion":
        add_urban_expansion(scene, rng, t0, t_end)
    elif category == "road_extension":
        add_road_extension(scene, rng, t0, t_end)
    elif category == "deforestation":
        add_deforestation(scene, rng, t0, t_end)
    elif category == "water_level":
        add_water_level(scene, rng, t0, t_end)
    elif category == "crop_rotation":
        add_crop_rotation(scene, rng, t0, t_end)
    elif category == "construction":
        add_construction(scene, rng, t0, t_end)
    elif category == "no_change" and rng.random() < 0.25:
        add_urban_expansion(scene, rng, t0, t_end, static=True)  # an old town that does not grow
    return scene
