-- Root topics: upstream's rule by default, a script's own rule when installed.
local lu = require "luaunit"
local kafkacrypto = require "kafkacrypto"
local h = require "helpers"

TestRoot = {}

function TestRoot:tearDown() kafkacrypto.set_root_rule(nil) end

function TestRoot:test_default_is_upstreams()
  -- the examples of upstream's README
  for _, t in ipairs { "example001", "example001.foo.bar.baz", "example001.foo.bar",
                       "example001.foo" } do
    lu.assertEquals(kafkacrypto.get_root(t), "example001")
  end
  lu.assertEquals(kafkacrypto.get_root("example001_baz.bar.foo"), "example001_baz")
  lu.assertEquals(kafkacrypto.tunables().topic_separator, ".")
end

function TestRoot:test_other_separator()
  kafkacrypto.set_root_rule("_")
  lu.assertEquals(kafkacrypto.get_root("example001_baz.bar"), "example001")
  lu.assertEquals(kafkacrypto.get_root("plain"), "plain")
  kafkacrypto.set_root_rule(nil)
  lu.assertEquals(kafkacrypto.get_root("example001_baz.bar"), "example001_baz")
end

function TestRoot:test_custom_function()
  -- a separator per prefix: lab topics split at "_", others at "."
  kafkacrypto.set_root_rule(function(topic)
    if topic:match("^lab_") then return topic:match("^lab_[^_]+") end
    return topic:match("^[^.]+")
  end)
  lu.assertEquals(kafkacrypto.get_root("lab_x_y.z"), "lab_x")
  lu.assertEquals(kafkacrypto.get_root("plant.a.b"), "plant")
end

function TestRoot:test_bad_rules_and_results_are_errors()
  kafkacrypto.set_root_rule(function() return nil end)
  lu.assertStrContains(h.error_of(kafkacrypto.get_root, "a.b"),
                       "root rule: for topic 'a.b' it returned nil, expected a string")
  kafkacrypto.set_root_rule(function() return "" end)
  lu.assertStrContains(h.error_of(kafkacrypto.get_root, "a.b"), "topic 'a.b' gave root ''")
  kafkacrypto.set_root_rule(function() return "no spaces" end)
  lu.assertStrContains(h.error_of(kafkacrypto.get_root, "a.b"), "gave root 'no spaces'")
  kafkacrypto.set_root_rule(function() return ("x"):rep(300) end)
  lu.assertStrContains(h.error_of(kafkacrypto.get_root, "a.b"), "not 1 to 249")
  kafkacrypto.set_root_rule(function(t) error("cannot classify " .. t) end)
  lu.assertStrContains(h.error_of(kafkacrypto.get_root, "a.b"),
                       "root rule failed for topic 'a.b'")
  lu.assertStrContains(h.error_of(kafkacrypto.get_root, "a.b"), "cannot classify a.b")
  lu.assertStrContains(h.error_of(kafkacrypto.set_root_rule, 42), "expected a function")
  lu.assertStrContains(h.error_of(kafkacrypto.set_root_rule, ""), "non-empty separator")
  kafkacrypto.set_root_rule(nil)
  lu.assertStrContains(h.error_of(kafkacrypto.get_root, ".hidden"), "gave root ''")
  lu.assertStrContains(h.error_of(kafkacrypto.get_root, ""), "expected a topic name")
end

function TestRoot:test_rule_works_inside_coroutines()
  kafkacrypto.set_root_rule(function(t) return t:sub(1, 3) end)
  local co = coroutine.wrap(function() return kafkacrypto.get_root("abcdef") end)
  lu.assertEquals(co(), "abc")
end
