# upstream_node.py CONFIG BOOTSTRAP TOPIC SECONDS: a producer of the
# Python package (test_interop_python.sh; PYTHONPATH names its tree): sends
# one message "from upstream" to TOPIC, prints "sent", then serves key
# requests for SECONDS.
import logging
import sys
import time

from kafkacrypto import KafkaCrypto, KafkaConsumer, KafkaProducer, KafkaCryptoStore

config, bootstrap, topic, seconds = sys.argv[1:5]
seconds = float(seconds)
logging.basicConfig(level=logging.ERROR)
store = KafkaCryptoStore(config)
store.store_value('bootstrap_servers', bootstrap, section='kafka')
store.store_value('security_protocol', 'PLAINTEXT', section='kafka')
crypto = KafkaCrypto(None, KafkaProducer(**store.get_kafka_config('producer', extra='crypto')),
                     KafkaConsumer(**store.get_kafka_config('consumer', extra='crypto')), store)
p = KafkaProducer(**store.get_kafka_config('producer'), key_serializer=crypto.getKeySerializer(),
                  value_serializer=crypto.getValueSerializer())
p.send(topic, key=b'upstream', value=b'from upstream')
p.flush()
print('sent', flush=True)
time.sleep(seconds)
crypto.close()
