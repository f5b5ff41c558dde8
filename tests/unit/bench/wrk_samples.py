"""Real outputs of `wrk -t2 -cN -dNs --latency -s bench/wrk/post_json.lua` (wrk 4.1.0)."""

# Ceiling app, 2 connections: latencies in us.
MICROSECONDS = """\
Running 3s test @ http://127.0.0.1:18082/api/v1/score
  2 threads and 2 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   127.42us  101.51us   4.18ms   99.36%
    Req/Sec     8.10k   214.67     8.40k    95.16%
  Latency Distribution
     50%  118.00us
     75%  120.00us
     90%  134.00us
     99%  192.00us
  49919 requests in 3.10s, 13.52MB read
Requests/sec:  16105.10
Transfer/sec:      4.36MB
"""

# Seed app, 32 connections: latencies in ms.
MILLISECONDS = """\
Running 5s test @ http://127.0.0.1:18081/api/v1/score
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    32.97ms   10.88ms 250.00ms   97.06%
    Req/Sec   494.50     54.30   810.00     96.00%
  Latency Distribution
     50%   32.41ms
     75%   34.06ms
     90%   34.40ms
     99%   59.52ms
  4927 requests in 5.01s, 0.92MB read
Requests/sec:    984.17
Transfer/sec:    187.41KB
"""

# Seed app, 2500 connections: percentiles in s (wrk pads them with a space).
SECONDS = """\
Running 8s test @ http://127.0.0.1:18081/api/v1/score
  2 threads and 2500 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.98s   928.02ms   7.59s    60.39%
    Req/Sec   563.91    274.65     1.02k    60.31%
  Latency Distribution
     50%    2.23s\x20
     75%    2.86s\x20
     90%    2.92s\x20
     99%    3.42s\x20
  7511 requests in 8.02s, 1.40MB read
Requests/sec:    936.95
Transfer/sec:    178.42KB
"""

# Every request answered 404.
NON_2XX = """\
Running 3s test @ http://127.0.0.1:18081/api/v1/nothere
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.43ms    0.86ms   9.55ms   79.06%
    Req/Sec     6.67k   232.70     7.18k    63.33%
  Latency Distribution
     50%    2.36ms
     75%    2.59ms
     90%    3.05ms
     99%    5.86ms
  39862 requests in 3.01s, 5.85MB read
  Non-2xx or 3xx responses: 39862
Requests/sec:  13259.86
Transfer/sec:      1.95MB
"""

# Seed app, 400 connections, --timeout 1s: socket timeouts.
TIMEOUTS = """\
Running 4s test @ http://127.0.0.1:18081/api/v1/score
  2 threads and 400 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   310.03ms   80.76ms 899.44ms   83.72%
    Req/Sec   495.62    285.10     0.98k    57.89%
  Latency Distribution
     50%  273.33ms
     75%  384.16ms
     90%  390.69ms
     99%  394.66ms
  3795 requests in 4.03s, 722.68KB read
  Socket errors: connect 0, read 0, write 0, timeout 19
Requests/sec:    941.21
Transfer/sec:    179.23KB
"""
