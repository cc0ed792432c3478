-- POST pre-signed Twilio webhooks, each once, in order (round-robin only if the file runs out).
-- Usage: wrk ... -s bench/wrk_post.lua URL -- REQUESTS_FILE
-- Each line of REQUESTS_FILE is "<X-Twilio-Signature>\t<form body>". A summary is printed as one JSON
-- line starting with "RESULT " so the benchmark can read it back.

local prepared = {}
local count = 0
local position = 0

function init(args)
  for line in io.lines(args[1]) do
    local signature, body = line:match("^([^\t]*)\t(.*)$")
    count = count + 1
    prepared[count] = wrk.format("POST", nil, {
      ["Content-Type"] = "application/x-www-form-urlencoded",
      ["X-Twilio-Signature"] = signature,
    }, body)
  end
end

function request()
  position = position % count + 1
  return prepared[position]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %d, "duration_us": %d, "status_errors": %d, "connect_errors": %d, ' ..
    '"read_errors": %d, "write_errors": %d, "timeouts": %d, "p50_us": %d, "p90_us": %d, ' ..
    '"p99_us": %d, "max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
