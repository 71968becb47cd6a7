# The reference solution of the leaderboard exercise: the code that goes between the
# markers of ../leaderboard.py, where the docstrings say what each function does.
# `flightcache exercise solution leaderboard` shows it.
# START leaderboard
def add_points(valkey: Any, key: str, member: str, points: float) -> float:
    return float(valkey.zincrby(key, points, member))


def rank(valkey: Any, key: str, member: str) -> int | None:
    score = valkey.zscore(key, member)
    if score is None:
        return None
    # competition rank: 1 + how many score strictly more; equal scores share a rank.
    # ZREVRANK is a position: it would split a tie by member name.
    return 1 + int(valkey.zcount(key, f"({score}", "+inf"))


def top(valkey: Any, key: str, n: int) -> list[tuple[str, float]]:
    if n <= 0:
        return []  # ZRANGE 0 -1 would be the whole board
    pairs = valkey.zrevrange(key, 0, n - 1, withscores=True)
    return [(str(member), float(score)) for member, score in pairs]


# END leaderboard
