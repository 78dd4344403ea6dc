-- wrk script: round-robin over users. Arguments after `--`: MODE FILE [PATH]
--   MODE  list (GET PATH), get (GET /api/tasks/ID), create (POST /api/tasks),
--         update (PUT /api/tasks/ID, a new title), toggle (PATCH /api/tasks/ID/complete)
--   FILE  one line per user: "<token> <one of the user's task ids>"
--   PATH  for list: the path and query to GET (default /api/tasks?limit=50)
-- Each thread starts at its own offset in the file. done() prints one JSON line.

local next_thread = 0
function setup(thread)
  next_thread = next_thread + 1
  thread:set("thread_number", next_thread)
end

function init(args)
  mode = args[1]
  path = args[3] or "/api/tasks?limit=50"
  entries = {}
  for line in io.lines(args[2]) do
    local token, id = line:match("^(%S+)%s+(%S+)")
    entries[#entries + 1] = { "Bearer " .. token, id }
  end
  position = ((thread_number or 1) * 7919) % #entries
  body = '{"title": "Benchmark task", "description": "written by wrk"}'
  counter = 0
end

function request()
  position = position % #entries + 1
  local entry = entries[position]
  if mode == "list" then
    return wrk.format("GET", path, { Authorization = entry[1] })
  elseif mode == "get" then
    return wrk.format("GET", "/api/tasks/" .. entry[2], { Authorization = entry[1] })
  elseif mode == "create" then
    return wrk.format("POST", "/api/tasks",
      { Authorization = entry[1], ["Content-Type"] = "application/json" }, body)
  elseif mode == "update" then
    counter = counter + 1
    return wrk.format("PUT", "/api/tasks/" .. entry[2],
      { Authorization = entry[1], ["Content-Type"] = "application/json" },
      '{"title": "Renamed ' .. counter .. '"}')
  else
    return wrk.format("PATCH", "/api/tasks/" .. entry[2] .. "/complete",
      { Authorization = entry[1] })
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, '
      .. '"max_us": %d, "connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
