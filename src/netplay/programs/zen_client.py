"""The zen client: N questions over each of M connections at once, every answer checked.

Each connection asks its questions one after another (the next when the
answer to the last has come), all connections at the same time, on one
asyncio loop.  Every answer is checked against the Zen; it reports the
questions answered per second and the latency of an answer (median and
99th percentile), and fails if a single answer was wrong or missing.

    netplay exec h1 -- python3 -m netplay.programs.zen_client www --connections 100 --questions 50
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from netplay.programs._cli import ProgramError, run
from netplay.protocols import NEED_DATA
from netplay.protocols.zen import Answer, ClientConnection, Question, aphorisms

PORT = 1070


@dataclass(frozen=True, slots=True)
class Result:
    first_error: str
    connections: int
    questions: int
    answered: int
    wrong: int
    failed_connections: int
    seconds: float
    per_second: float
    p50_ms: float
    p99_ms: float


async def _one(
    host: str, port: int, count: int, offset: int, latencies: list[float]
) -> tuple[int, int]:
    """One connection: (answers right, answers wrong)."""
    table = list(aphorisms().items())
    reader, writer = await asyncio.open_connection(host, port)
    conn, right, wrong = ClientConnection(), 0, 0
    try:
        for i in range(count):
            question, expected = table[(offset + i) % len(table)]
            started = time.perf_counter()
            writer.write(conn.send(Question(text=question)))
            event = conn.next_event()
            while event is NEED_DATA:
                conn.receive_data(await reader.read(4096))
                event = conn.next_event()  # ZenError if the server ended with it unanswered
            latencies.append(time.perf_counter() - started)
            if not isinstance(event, Answer):
                raise ProgramError("the server ended the conversation")
            right, wrong = (right + 1, wrong) if event.text == expected else (right, wrong + 1)
    finally:
        writer.close()
        await writer.wait_closed()
    return right, wrong


async def load(host: str, port: int, connections: int, questions: int) -> Result:
    latencies: list[float] = []
    started = time.perf_counter()
    outcomes = await asyncio.gather(
        *(_one(host, port, questions, i, latencies) for i in range(connections)),
        return_exceptions=True,
    )
    seconds = time.perf_counter() - started
    right = sum(o[0] for o in outcomes if isinstance(o, tuple))
    wrong = sum(o[1] for o in outcomes if isinstance(o, tuple))
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    failed = len(errors)
    ordered = sorted(latencies) or [0.0]
    return Result(
        first_error=f"{errors[0].__class__.__name__}: {errors[0]}" if errors else "",
        connections=connections,
        questions=connections * questions,
        answered=right,
        wrong=wrong,
        failed_connections=failed,
        seconds=seconds,
        per_second=right / seconds if seconds else 0.0,
        p50_ms=statistics.median(ordered) * 1000,
        p99_ms=ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="zen_client", description="Ask the zen server many questions and check them."
    )
    parser.add_argument("host", help="the server's name or address")
    parser.add_argument("-p", "--port", type=int, default=PORT, help=f"port (default {PORT})")
    parser.add_argument("--connections", type=int, default=1, help="connections at once")
    parser.add_argument("--questions", type=int, default=10, help="questions per connection")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)

    def body() -> int:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = min(hard, max(soft, args.connections + 64))
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        result = asyncio.run(load(args.host, args.port, args.connections, args.questions))
        if args.json:
            print(json.dumps(asdict(result)))
        else:
            print(
                f"{result.answered} of {result.questions} questions answered right over "
                f"{args.connections} connections in {result.seconds:.2f} s: "
                f"{result.per_second:.0f}/s, p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms"
            )
        if result.answered != result.questions:
            first = f" (the first: {result.first_error})" if result.first_error else ""
            raise ProgramError(
                f"{result.wrong} wrong answers, {result.failed_connections} failed connections"
                + first
            )
        return 0

    return run("zen_client", body)


if __name__ == "__main__":
    sys.exit(main())
