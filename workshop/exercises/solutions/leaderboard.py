# The reference solution of the leaderboard exercise: the code that goes between the
# markers of ../leaderboard.py, where the docstrings say what each function does.
# `flightcache exercise solution leaderboard` shows it.
# START leaderboard
def add_points(valkey: Any, key: str, member: str, points: float) -> float:
    return float(valkey.zincrby(key, points, member))


def rank(valkey: Any, key: str, member: str) -> int | None:
    position = valkey.zrevrank(key, member)
    return None if position is None else int(position) + 1


def top(valkey: Any, key: str, n: int) -> list[tuple[str, float]]:
    pairs = valkey.zrevrange(key, 0, n - 1, withscores=True)
    return [(str(member), float(score)) for member, score in pairs]


# END leaderboard
