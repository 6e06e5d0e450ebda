-- Stored offsets name the topic they belong to by its Kafka topic id: a topic deleted and created again keeps its
-- name but not its id, and its old offsets must not be applied to the new one.
ALTER TABLE bus.consumer_offsets ADD COLUMN topic_id text;
