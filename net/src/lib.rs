//! ringmq-net: remoting codec, broker request processors, client library.
