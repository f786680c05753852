-- wrk: GET the packument of a random seeded package (`seed-<n>`, n < $PACKAGES).
local n = tonumber(os.getenv("PACKAGES") or "10")
math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 100000)
request = function()
  return wrk.format("GET", "/seed-" .. math.random(0, n - 1))
end
