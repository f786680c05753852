-- wrk: GET the packument of every seeded package (`seed-<n>`, n < $PACKAGES) once, the $THREADS
-- threads interleaved; each thread stops after its share, so the latencies are those of first
-- reads only (a few requests in flight when a thread stops are not counted).
local n = tonumber(os.getenv("PACKAGES") or "10")
local step = tonumber(os.getenv("THREADS") or "2")
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end

function init(args)
  i = id
end

request = function()
  if i >= n then
    wrk.thread:stop()
  end
  local path = "/seed-" .. (i % n)
  i = i + step
  return wrk.format("GET", path)
end
