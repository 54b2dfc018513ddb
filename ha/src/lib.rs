//! ringmq-ha: master/slave replication (see issue 4). Empty until the HA issue lands.
