"""Ways events enter the platform; all of them publish JSON events to Kafka."""
