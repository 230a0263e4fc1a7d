-- The node store: NODE.config, upstream's "universal configuration file"
-- (KafkaCryptoStore). Names follow upstream's in Lua style:
--
--   local kcs = kafkacrypto.store("my-node-ID.config")
--   local consumer = kafkacrypto.consumer(kcs:get_kafka_config("consumer"))
--   local value1 = kcs:load_value("value1")
--   kcs:store_value("value1", "value-of-value1")
--
-- kafkacrypto.store(path[, node_id[, options]])    KafkaCryptoStore(file, nodeID)
--   Opens (and keeps locked) the INI file `path` ("<node_id>.config" when
--   path is nil). A new file is created when node_id is given. A given
--   node_id must match the file's. options:
--     apply_log_level = true      set the log level from the file's
--                                 log_level in [<node>-crypto] as upstream
--                                 does (by default the runtime's level,
--                                 from kafkacrypto.cfg or --log-level, stays)
--     trust_temporary_rot = true  a new file trusts upstream's public
--                                 "temporary" root (by default: nothing)
--
-- Methods (upstream name in brackets):
--   :get_kafka_config(kind[, extra])  [get_kafka_config(use, extra)]
--       kind "consumer" or "producer"; extra e.g. "crypto" for the key
--       exchange clients. Returns librdkafka properties (kafka-python names
--       in the file translated as upstream's confluent-kafka wrapper does),
--       ready for kafkacrypto.producer/consumer; add your serializers to it.
--   :load_value(name[, section[, default]]) -> value, type   [load_value]
--       section nil is the node section, else "<node_id>-<section>"; falls
--       back to [DEFAULT]; a missing option gives `default` (and no type).
--       Values are typed as upstream reads them: "123" is a number, "True"
--       a boolean, "base64#..." bytes. type is "int", "float", "bool",
--       "text", "bytes" or "none" (an invalid base64# value, read as nil).
--       Integers beyond 2^53 come back as their decimal text.
--   :store_value(name, value[, section])                   [store_value]
--       value nil deletes. A boolean is written True/False, an integral
--       number as an int, another number as a float, a string as text;
--       for bytes wrap the string: kafkacrypto.bytes(s) ("base64#..." in
--       the file). Names may be bytes too (kafkacrypto.bytes(digest)).
--       Every store rewrites the file atomically.
--   :load_section(section[, defaults = true]) -> {name = value}, {names}  [load_section]
--       The options visible in the section, typed, and their names in file
--       order. nil if the section is missing and defaults is false; with
--       defaults false, options equal to [DEFAULT]'s are left out.
--   :node_id()    the node ID                   [_nodeID]
--   :path()       the file
--   :file_path(option, suffix)  where a node file named by a "file#..."
--       option is ("cryptokey", ".crypto"): a relative path is in the
--       config file's directory (not the working directory, unlike
--       upstream); an unset option gives NODE_ID..suffix there.
--   :close()      unlocks the file              [close]

local core = require "kafkacrypto.core"

local store = {}

function store.open(path, node_id, options)
  return core.store_open(path, node_id, options)
end

return store
