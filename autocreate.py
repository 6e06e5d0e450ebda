import time
from quixstreams import Application
from probe_common import BROKER, IN_TOPIC, admin, delete_topics
a = Application(broker_address=BROKER, consumer_group="quixprobe-ac", auto_offset_reset="earliest",
                state_dir="/tmp/quix/state", loglevel="DEBUG", use_changelog_topics=False)
tin = a.topic(IN_TOPIC, value_deserializer="bytes")
tnew = a.topic("quixprobe.autocreated", value_serializer="bytes")
print("in broker_config:", tin.broker_config, "| new broker_config:", tnew.broker_config)
md = admin().list_topics(timeout=10).topics
print("autocreated exists after app.topic():", "quixprobe.autocreated" in md,
      "partitions:", len(md["quixprobe.autocreated"].partitions) if "quixprobe.autocreated" in md else None)
