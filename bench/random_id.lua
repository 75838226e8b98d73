-- wrk script for bench/proxy.py: every request carries a random 6-digit ?id=,
-- the assignment's request id, so that consistent hashing spreads the load.
math.randomseed(os.time())

request = function()
  return wrk.format("GET", "/home?id=" .. math.random(100000, 999999))
end
