"""MemberData: is Peeters Jan (48031202166) insured over the last month? (README "MemberData").
Prints the SAML status and the insurer that answered."""

import datetime as dt

from lxml import etree
from sandbox_client import commons_input, connect, header

from mycarenet_ic.clients.messages import attribute_query

client, me = connect("memberdata")
last_month = dt.date.today() - dt.timedelta(days=30), dt.date.today() - dt.timedelta(days=1)
answer = client.service.memberDataConsultation(
    **header(), CommonInput=commons_input(me),
    Detail={"_value_1": attribute_query(me.nihii, "48031202166", *last_month),  # the SAML AttributeQuery
            "ContentType": "text/xml", "ContentEncoding": "none"})
saml = etree.fromstring(answer.Return.Detail._value_1)                          # the SAML Response
print("MemberData:", saml.find("{*}Status/{*}StatusCode").get("Value"))
print("insurer:", saml.findtext("{*}Issuer"))
