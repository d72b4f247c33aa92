"""Texts of the synthetic world: scene descriptions, frame descriptions and change captions.

Captions are written from the land-cover maps themselves (what changed between the first and the
last input frame, where, and into what), in the style of LEVIR-CC: lower case, no punctuation,
short, with spatial words ("in the top-left", "along the east side", "eastward"). When almost
nothing changed they say so, in LEVIR-CC's own words.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

import numpy as np

from tamms.data.synthetic_layout import (
    BARE, BUILDING, CONSTRUCTION, CROP_GREEN, CROP_PLOUGHED, CROP_RIPE, CROPS, FOREST, GRASS, ROAD, WATER,
)

NO_CHANGE_CAPTIONS = [
    "there is no difference",
    "the two scenes seem identical",
    "the scene is the same as before",
    "no change has occurred",
    "almost nothing has changed",
    "nothing has changed in the scene",
    "the scene remains unchanged",
    "there is no obvious change",
]
# fraction of pixels below which first -> last counts as "no change"
NO_CHANGE_FRACTION = 0.002

# 3x3 position grid -> phrases (LEVIR-CC style first, then compass style)
_POS_PHRASES: dict[tuple[int, int], list[str]] = {
    (0, 0): ["in the top-left", "in the upper left corner", "in the north-west", "at the top left of the scene"],
    (0, 1): ["at the top", "in the north", "along the top of the scene", "in the upper part of the scene"],
    (0, 2): ["in the top-right", "in the upper right corner", "in the north-east", "at the top right of the scene"],
    (1, 0): ["on the left", "in the west", "along the west side", "on the left side of the scene"],
    (1, 1): ["in the middle", "in the center of the scene", "in the centre", "in the middle of the scene"],
    (1, 2): ["on the right", "in the east", "along the east side", "on the right side of the scene"],
    (2, 0): ["in the bottom-left", "in the lower left corner", "in the south-west", "at the bottom left of the scene"],
    (2, 1): ["at the bottom", "in the south", "along the bottom of the scene", "in the lower part of the scene"],
    (2, 2): ["in the bottom-right", "in the lower right corner", "in the south-east", "at the bottom right of the scene"],
}
_SPREAD_PHRASES = ["across the scene", "across most of the scene", "all over the scene"]
_COMPASS = {(0, 0): "north-west", (0, 1): "north", (0, 2): "north-east", (1, 0): "west", (1, 1): "centre",
            (1, 2): "east", (2, 0): "south-west", (2, 1): "south", (2, 2): "south-east"}

_DIR_PHRASES = {
    "eastward": ["eastward", "to the east", "toward the east", "from west to east"],
    "westward": ["westward", "to the west", "toward the west", "from east to west"],
    "northward": ["northward", "to the north", "toward the north", "from south to north"],
    "southward": ["southward", "to the south", "toward the south", "from north to south"],
    "north-eastward": ["north-eastward", "toward the north-east", "to the upper right", "toward the top right"],
    "north-westward": ["north-westward", "toward the north-west", "to the upper left", "toward the top left"],
    "south-eastward": ["south-eastward", "toward the south-east", "to the lower right", "toward the bottom right"],
    "south-westward": ["south-westward", "toward the south-west", "to the lower left", "toward the bottom left"],
}

SPATIAL_WORDS = ("top", "bottom", "left", "right", "north", "south", "east", "west", "middle", "center",
                 "centre", "corner", "side", "upper", "lower", "across", "all over")

_NOUN = {WATER: "water", FOREST: "trees", GRASS: "grass", CROP_GREEN: "green crops", CROP_RIPE: "ripe crops",
         CROP_PLOUGHED: "ploughed land", BARE: "bareland", ROAD: "road", BUILDING: "buildings",
         CONSTRUCTION: "a construction site"}
_LAND = {WATER: "water", FOREST: "woods", GRASS: "grassland", CROP_GREEN: "farmland", CROP_RIPE: "farmland",
         CROP_PLOUGHED: "farmland", BARE: "bareland", ROAD: "road", BUILDING: "buildings",
         CONSTRUCTION: "construction site"}


@functools.lru_cache(maxsize=8)
def _cells(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """3x3 cell index per pixel `[H, W]` (row-major, 0 = top-left) and the pixel count of each cell `[9]`."""
    r = np.minimum(np.arange(h) * 3 // h, 2)
    c = np.minimum(np.arange(w) * 3 // w, 2)
    cell = r[:, None] * 3 + c[None, :]
    return cell, np.bincount(cell.ravel(), minlength=9)


def _counts(mask: np.ndarray) -> np.ndarray:
    """Pixels of `mask` in each 3x3 cell, `[9]`."""
    cell, _ = _cells(*mask.shape)
    return np.bincount(cell[mask], minlength=9)


def _position(c9: np.ndarray) -> tuple[int, int] | None:
    """Per axis: the third holding more than half of the pixels, else the middle; None when empty.

    So a road across the middle row is "in the middle", and two blobs far apart do not put the
    change in an empty corner.
    """
    total = c9.sum()
    if total == 0:
        return None
    grid = c9.reshape(3, 3) / total
    rows, cols = grid.sum(1), grid.sum(0)
    return (int(rows.argmax()) if rows.max() > 0.5 else 1, int(cols.argmax()) if cols.max() > 0.5 else 1)


def _spread(c9: np.ndarray, sizes: np.ndarray) -> bool:
    """Covers at least 35% of the scene and more than 15% of 7 of the 9 cells."""
    return c9.sum() >= 0.35 * sizes.sum() and int((c9 > 0.15 * sizes).sum()) >= 7


def position(mask: np.ndarray) -> tuple[int, int] | None:
    """3x3 cell (row, col) where `mask` is, or None for an empty mask."""
    return _position(_counts(mask))


def spread(mask: np.ndarray) -> bool:
    """True when `mask` covers the scene widely rather than one part of it."""
    return _spread(_counts(mask), _cells(*mask.shape)[1])


def where_phrases(mask: np.ndarray) -> list[str]:
    """Phrases saying where `mask` is ("in the top-left", "along the east side", ...)."""
    if spread(mask):
        return list(_SPREAD_PHRASES)
    pos = position(mask)
    return list(_POS_PHRASES[pos if pos is not None else (1, 1)])


def compass(mask: np.ndarray) -> str:
    pos = position(mask)
    return _COMPASS[pos if pos is not None else (1, 1)]


def _in_compass(c9: np.ndarray, sizes: np.ndarray, big: float = 0.5) -> str:
    if c9.sum() > big * sizes.sum() or _spread(c9, sizes):
        return "across most of the scene"
    pos = _position(c9)
    c = _COMPASS[pos if pos is not None else (1, 1)]
    return "in the centre" if c == "centre" else f"in the {c}"


def _road_phrase(course: str | None) -> str | None:
    return {
        "west_east": "a road crossing from west to east",
        "north_south": "a road running from north to south",
        "north_west_south_east": "a road running from the north-west to the south-east",
        "south_west_north_east": "a road running from the south-west to the north-east",
    }.get(course or "")


def describe_landcover(lc: np.ndarray, info: dict[str, Any]) -> tuple[str, list[str]]:
    """(kind of area, feature phrases) for one land-cover map."""
    cell, sizes = _cells(*lc.shape)
    table = np.bincount((lc * 9 + cell).ravel(), minlength=90).reshape(10, 9)  # [class, cell] pixel counts
    n = float(sizes.sum())
    frac = table.sum(1) / n
    crop_c = table[list(CROPS)].sum(0)
    built_c = table[BUILDING] + table[CONSTRUCTION]
    crop, built = crop_c.sum() / n, built_c.sum() / n
    features: list[tuple[float, str]] = []
    if frac[WATER] > 0.02:
        features.append((frac[WATER], f"a lake {_in_compass(table[WATER], sizes, 0.6)}"))
    if frac[FOREST] > 0.06:
        word = "dense forest" if frac[FOREST] > 0.5 else "forest"
        features.append((frac[FOREST], f"{word} {_in_compass(table[FOREST], sizes)}"))
    if crop > 0.08:
        features.append((crop, f"cropland {_in_compass(crop_c, sizes)}"))
    if frac[GRASS] > 0.12:
        features.append((frac[GRASS], f"grassland {_in_compass(table[GRASS], sizes)}"))
    if frac[BARE] > 0.04:
        features.append((frac[BARE], f"bare ground {_in_compass(table[BARE], sizes)}"))
    if built > 0.08:
        features.append((built, f"a residential area {_in_compass(built_c, sizes)}"))
    elif frac[BUILDING] > 0.003:
        features.append((frac[BUILDING], f"a few buildings {_in_compass(table[BUILDING], sizes)}"))
    if frac[CONSTRUCTION] > 0.01:
        features.append((frac[CONSTRUCTION], f"a construction site {_in_compass(table[CONSTRUCTION], sizes)}"))
    features.sort(key=lambda f: -f[0])
    phrases = [f for _, f in features[:4]]
    road = _road_phrase(info.get("road"))
    if road is None and frac[ROAD] > 0.01 and built <= 0.08:
        road = "a road " + _in_compass(table[ROAD], sizes, 1.0)
    if road:
        phrases.append(road)
    if built > 0.15:
        kind = "a suburban area"
    elif frac[FOREST] > 0.5:
        kind = "a forested area"
    elif frac[WATER] > 0.12:
        kind = "a lakeside area"
    elif crop + frac[GRASS] > 0.4:
        kind = "a rural area"
    else:
        kind = "a mixed rural area"
    return kind, phrases


def _join(phrases: list[str]) -> str:
    if not phrases:
        return ""
    if len(phrases) == 1:
        return phrases[0]
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


def describe_scene(lc: np.ndarray, info: dict[str, Any]) -> str:
    """One sentence about the scene, e.g. 'a rural area with a lake in the north-west, cropland in the
    south and a road crossing from west to east'."""
    kind, phrases = describe_landcover(lc, info)
    return f"{kind} with {_join(phrases)}" if phrases else kind


def season_of(date: dt.date) -> str:
    return {12: "winter", 1: "winter", 2: "winter", 3: "spring", 4: "spring", 5: "spring", 6: "summer",
            7: "summer", 8: "summer", 9: "autumn", 10: "autumn", 11: "autumn"}[date.month]


def describe_frame(lc: np.ndarray, date: dt.date, cloud_fraction: float, info: dict[str, Any]) -> str:
    """A short text about one frame: season and year, what it shows, and clouds."""
    _, phrases = describe_landcover(lc, info)
    season = season_of(date)
    text = f"{'an' if season == 'autumn' else 'a'} {season} {date.year} image showing {_join(phrases[:3]) or 'open land'}"
    if cloud_fraction > 0.4:
        text += " largely covered by clouds"
    elif cloud_fraction > 0.02:
        text += " partly covered by clouds"
    return text


# --- change captions ----------------------------------------------------------------------------------
# what a place turns into, with its article
_LAND_TO = {WATER: "water", FOREST: "woods", GRASS: "grassland", CROP_GREEN: "farmland", CROP_RIPE: "farmland",
            CROP_PLOUGHED: "farmland", BARE: "bareland", ROAD: "a road", BUILDING: "buildings",
            CONSTRUCTION: "a construction site"}


def _top_transitions(a: np.ndarray, b: np.ndarray, changed: np.ndarray, k: int = 2) -> list[tuple[int, int, np.ndarray]]:
    """The `k` most frequent (from class, to class) pairs among changed pixels, with their masks."""
    pairs = a[changed] * 16 + b[changed]
    values, counts = np.unique(pairs, return_counts=True)
    order = np.argsort(-counts)[:k]
    out = []
    for j in order:
        fa, tb = int(values[j] // 16), int(values[j] % 16)
        out.append((fa, tb, changed & (a == fa) & (b == tb)))
    return out


def _amount(frac: float) -> str:
    return "a few" if frac < 0.03 else ("some" if frac < 0.12 else "many")


def change_captions(first: np.ndarray, last: np.ndarray, category: str, events: list[dict[str, Any]],
                    rng: np.random.Generator, n: int = 5) -> list[str]:
    """`n` distinct captions of the change from `first` to `last` land cover."""
    changed = first != last
    frac = float(changed.mean())
    if frac < NO_CHANGE_FRACTION:
        idx = rng.permutation(len(NO_CHANGE_CAPTIONS))[:n]
        return [NO_CHANGE_CAPTIONS[i] for i in sorted(idx)]
    event = events[0] if events else {}
    direction = event.get("direction")
    dirs = _DIR_PHRASES.get(direction or "", [])
    where = where_phrases(changed)
    trans = _top_transitions(first, last, changed)
    fa, tb, _ = trans[0]
    src_mask = changed
    src = _LAND[int(np.bincount(first[src_mask], minlength=10).argmax())]
    amount = _amount(frac)
    t: list[str] = []  # templates, filled below with {w} (where) and {d} (direction)

    if category == "urban_expansion":
        t += ["{amount} houses and roads are built {w}", "rows of houses appear {w} replacing the {src}",
              "the {src} {w} is turned into a residential area", "new streets with houses are built {w}"]
        if dirs:
            t += ["the residential area expands {d} over the {src}", "the town grows {d} with new roads and buildings",
                  "houses and streets spread {d} into the {src}"]
        if (last == CONSTRUCTION).any() and ((last == CONSTRUCTION) & changed).mean() > 0.002:
            t += ["the town expands {d} and some houses are still under construction" if dirs else
                  "some houses {w} are still under construction"]
    elif category == "road_extension":
        t += ["a new road is built {w} through the {src}", "a road appears {w}", "a road has been built {w} across the {src}"]
        if dirs:
            t += ["a road is extended {d}", "the road is lengthened {d} across the {src}", "the road {w} grows {d}",
                  "a road is built {d} through the {src}"]
        if ((last == BARE) & changed).any():
            t += ["a road is built {w} and the land ahead of it is cleared"]
        if ((last == BUILDING) & changed).sum() >= 4:
            t += ["a road is built {w} and some houses appear beside it", "houses are built along the new road {w}"]
            if dirs:
                t += ["a road with houses on both sides is extended {d}"]
    elif category == "deforestation":
        to_forest = ((last == FOREST) & changed).mean()
        to_open = (((last == BARE) | (last == GRASS)) & changed & (first == FOREST)).mean()
        if to_open >= to_forest:
            dest = "bareland" if ((last == BARE) & changed).sum() >= ((last == GRASS) & changed).sum() else "grassland"
            t += ["trees {w} are cut down", "part of the forest {w} is cleared and becomes " + dest,
                  "the woods {w} are removed", "many trees disappear {w} leaving " + dest,
                  "the forest {w} is replaced by " + dest]
            if dirs:
                t += ["the clearing in the forest expands {d}", "trees are cut down {d} across the woods"]
        if to_forest > 0.002:
            t += ["trees grow back {w}", "some of the cleared land {w} is covered by trees again",
                  "young forest appears {w}"]
    elif category == "water_level":
        water_gain = int((last == WATER).sum()) - int((first == WATER).sum())
        if water_gain > 0:
            t += ["the lake {w} becomes larger", "the water level rises and the lake floods the {src} {w}",
                  "water covers the {src} {w}", "the shore of the lake moves outward {w}",
                  "the lake expands {w} over the {src}"]
        else:
            dest = "bareland" if ((last == BARE) & changed).sum() >= ((last == GRASS) & changed).sum() else "grass"
            t += ["the lake {w} shrinks", "the water recedes and leaves " + dest + " along the shore {w}",
                  "the lake becomes smaller and " + dest + " appears {w}", "the water level drops {w}",
                  "the shore of the lake moves inward {w}"]
    elif category == "crop_rotation":
        for fa_, tb_, m in trans:
            w2 = where_phrases(m)
            t += [f"the fields {{w2}} change from {_NOUN[fa_]} to {_NOUN[tb_]}".replace("{w2}", w2[int(rng.integers(len(w2)))])]
            if tb_ == CROP_PLOUGHED:
                t += ["{amount} fields {w} have been ploughed"]
            elif tb_ == CROP_RIPE:
                t += ["the crops {w} have ripened"]
            elif tb_ == CROP_GREEN:
                t += ["the fields {w} turn green"]
            elif tb_ == GRASS:
                t += ["some fields {w} are left fallow and covered by grass"]
        t += ["the farmland {w} changes its crops", "several fields {w} are planted with new crops",
              "the crops in the fields {w} are different"]
    elif category == "construction":
        t += ["construction sites appear {w}", "the {src} {w} becomes a construction site",
              "a large building is constructed {w} on the {src}", "new buildings with paved yards appear {w}",
              "{amount} large buildings are built {w}"]
        if dirs:
            t += ["new construction spreads {d}", "buildings are constructed one after another {d}"]
        if not ((last == BUILDING) & changed).any():
            t = [x for x in t if "building" not in x]
            t += ["the ground {w} is cleared for construction", "a building site appears {w} on the {src}"]
    # generic phrasings from the main transition, when the event's own phrasings are too few
    to = _LAND_TO[tb]
    generic = [f"the {_LAND[fa]} {{w}} becomes {to}", f"part of the {_LAND[fa]} {{w}} is replaced by {to}",
               f"part of the {_LAND[fa]} {{w}} turns into {to}"]
    if len([x for x in t if dirs or "{d}" not in x]) < n + 1:
        t += generic

    captions: list[str] = []
    seen: set[str] = set()
    for k in rng.permutation(len(t)):
        tpl = t[int(k)]
        if "{d}" in tpl and not dirs:
            continue
        text = tpl.format(w=where[int(rng.integers(len(where)))], d=dirs[int(rng.integers(len(dirs)))] if dirs else "",
                          src=src, amount=amount)
        text = " ".join(text.split())
        if text not in seen:
            seen.add(text)
            captions.append(text)
        if len(captions) == n:
            break
    # rare: templates collapsed onto each other; vary the place phrase of the generic ones
    for tpl in generic + t:
        for w in where:
            if len(captions) >= n or "{d}" in tpl:
                continue
            text = " ".join(tpl.format(w=w, d="", src=src, amount=amount).split())
            if text not in seen:
                seen.add(text)
                captions.append(text)
    return captions
