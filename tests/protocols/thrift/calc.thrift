// The service the Thrift test drives: python3-thrift's generated client (TFramedTransport,
// TBinaryProtocol) against handlers that run behind KCM sockets.
namespace py kcmtest

exception CalcError {
	1: string why
}

service Calc {
	i32 add(1: i32 a, 2: i32 b),
	string echo(1: string text),
	i64 sum(1: list<i64> values) throws (1: CalcError err),
	oneway void note(1: i32 seq)
}
