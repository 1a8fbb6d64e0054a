"""Writes a small made-up movie log for the README's "bring your own dataset" walk-through:
``ratings.csv`` (user_id, movie_id, stars, unix_time) and ``movies.csv`` (movie_id, title, year).

60 users rate 40 movies over four months of 2020 (users 51-60 only in the last month, so the
test month has cold users); a user's stars follow a hidden taste (genre) so that a CF model has
something to learn. Deterministic: same files every time.

    python examples/byo/make_data.py examples/byo/data
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

T0 = 1577836800  # 2020-01-01 UTC
GENRES = ["Western", "Comedy", "Mystery", "Space Opera"]


def make(out: Path, seed: int = 0) -> tuple[Path, Path]:
    rng = np.random.default_rng(seed)
    movies = pd.DataFrame({"movie_id": range(1, 41)})
    movies["title"] = [f"{GENRES[i % 4]} Story {i}" for i in movies["movie_id"]]
    movies["year"] = [1970 + (i * 7) % 50 for i in movies["movie_id"]]
    rows = []
    for user in range(1, 61):
        taste = user % 4  # the genre this user rates high
        months = [3] if user > 50 else [0, 1, 2, 3]
        for movie in rng.choice(movies["movie_id"], size=6 if user > 50 else 14, replace=False):
            stars = 4 + rng.integers(0, 2) if movie % 4 == taste else 1 + rng.integers(0, 4)
            month = int(rng.choice(months))
            rows.append({"user_id": user, "movie_id": int(movie), "stars": int(stars),
                         "unix_time": T0 + month * 31 * 86400 + int(rng.integers(0, 27 * 86400))})
    out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(out / "ratings.csv", index=False)
    movies.to_csv(out / "movies.csv", index=False)
    return out / "ratings.csv", out / "movies.csv"


if __name__ == "__main__":
    ratings, movies = make(Path(sys.argv[1] if len(sys.argv) > 1 else "examples/byo/data"))
    print(f"wrote {ratings} ({sum(1 for _ in open(ratings)) - 1} ratings) and {movies}")
